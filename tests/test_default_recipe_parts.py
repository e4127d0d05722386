"""The default recipe with any one part swapped: every architecture and every loss trains on it
(the self-conditioned GAN clusters any D through its `trunk()`), and a D without a trunk is
refused in one line naming what to do."""

from __future__ import annotations

import csv
import math

import pytest
import torch

from gan.networks import dcgan, mlp, resnet, sagan
from gan.runs.wiring import build_module, fit
from tests.conftest import FAST, needs_mnist, run_module

MODELS = ["mlp", "dcgan", "resnet", "sagan"]
LOSSES = ["bce", "hinge", "lsgan", "wgan_gp", "wgan", "wgan_lp"]
# Two batches of 16 fake images, nets a few units wide: the recipe's parts, cheaply.
TINY = {"mlp": ["model.generator.hidden=[16]", "model.discriminator.hidden=[16]"],
        "dcgan": ["model.generator.width=4", "model.discriminator.width=4"],
        "resnet": ["model.generator.width=8", "model.discriminator.width=8"],
        "sagan": ["model.generator.width=8", "model.discriminator.width=8"]}


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("model", MODELS)
def test_every_model_and_loss_trains_on_the_default_recipe(fast_cfg, model, loss):
    cfg = fast_cfg(f"model={model}", f"loss={loss}", *TINY[model], "model.latent_dim=8",
                   "trainer.limit_train_batches=2", "tricks.self_cond.clusters=4")
    assert "self_cond" in cfg.tricks and cfg.model.conditional  # the default's trick is on
    trainer, module = fit(cfg)
    assert module.d_step == 2
    assert math.isfinite(float(trainer.callback_metrics["train/d_loss"]))
    assert module.trick_state['self_cond'].prior.shape == (4,) and module.trick_state['self_cond'].centres.abs().sum() > 0


@pytest.mark.parametrize("net", [mlp.Discriminator, dcgan.Discriminator,
                                 resnet.Discriminator, sagan.Discriminator])
def test_every_discriminator_has_a_label_free_trunk_its_head_reads(net):
    """trunk() maps images to the features D's head (and projection) read: the logit is the
    head of the trunk's features, whatever the label."""
    torch.manual_seed(0)
    kwargs = {"hidden": [16]} if net is mlp.Discriminator else {"width": 8}
    if net is mlp.Discriminator:
        kwargs["projection"] = True
    d = net((1, 28, 28), num_classes=5, conditional=True, **kwargs).eval()
    x, labels = torch.randn(4, 1, 28, 28), torch.tensor([0, 1, 2, 3])
    h = d.trunk()(x).flatten(1)  # (B, F)
    head = d.net[-1] if net is mlp.Discriminator else d.head
    expected = head(h).squeeze(1) + d.projection(h, labels)
    torch.testing.assert_close(d(x, labels), expected)
    assert {id(p) for p in d.trunk().parameters()} <= {id(p) for p in d.parameters()}


class TrunklessD(mlp.Discriminator):
    trunk = None  # a user's own class without the method


def test_a_discriminator_without_a_trunk_is_refused_in_one_line(fast_cfg):
    cfg = fast_cfg("model=mlp", "model.discriminator._target_=tests.test_default_recipe_parts."
                   "TrunklessD", "model.generator.hidden=[16]", "model.discriminator.hidden=[16]")
    module, tricks = build_module(cfg)
    with pytest.raises(ValueError, match=r"has no trunk\(\).*recipe=unconditional") as err:
        for trick in tricks:
            trick.setup(None, module, "fit")
    assert "\n" not in str(err.value)


def test_the_tutorials_concatenating_cgan_has_no_label_free_trunk():
    d = mlp.Discriminator((1, 28, 28), hidden=[16], num_classes=3, conditional=True)
    with pytest.raises(ValueError, match="model.discriminator.projection=true"):
        d.trunk()


def test_the_fast_config_is_the_default_recipe():
    assert not any(o.startswith("recipe=") for o in FAST)


@pytest.mark.slow
@needs_mnist
def test_a_4_by_6_multirun_on_the_default_recipe_finishes_every_job(tmp_path):
    """The design card's promise as a user types it: a real `-m` process over every net and
    every loss on the default recipe and real MNIST, a few batches each (full-size nets), ends
    with 24 of 24 jobs done, each with its metrics.json."""
    sweep = tmp_path / "sweep"
    run_module("gan.train", "-m", f"model={','.join(MODELS)}", f"loss={','.join(LOSSES)}",
               "trainer.limit_train_batches=2", "trainer.enable_progress_bar=false",
               # the first clustering reads 1,000 images, not 10,000 (ResNet's D: ~100 s), and
               # only the final metrics run, on 500 samples
               "tricks.self_cond.n_images=1000", "trainer.enable_model_summary=false",
               # nor the purity diagnostic's 5,000 held-out digits (a full-size D on a CPU)
               "tricks.self_cond.purity_images=0",
               "callbacks.metrics.every_n_epochs=null", "callbacks.metrics.n_final=500",
               "n_fixed=16",
               # 2 batches make garbage: the guard would mark them diverged, not failed
               "guard.max_fid=1e9", "guard.min_classes_covered=0",
               f"hydra.sweep.dir={sweep}", cwd=tmp_path, timeout=1800)
    rows = list(csv.DictReader((sweep / "index.tsv").open(), delimiter="\t"))
    assert len(rows) == 24 and {r["status"] for r in rows} == {"ok"}, rows
    assert len(list(sweep.glob("*/metrics.json"))) == 24


def test_a_missing_package_is_one_line_naming_its_extra():
    from hydra.errors import InstantiationException

    from gan.io.usage import usage_error

    def raised(name: str) -> BaseException:  # as Hydra wraps a target whose module fails
        try:
            try:
                raise ModuleNotFoundError(f"No module named '{name}'", name=name)
            except ModuleNotFoundError as cause:
                raise InstantiationException("Error locating target 'x.Y'") from cause
        except InstantiationException as err:
            return err

    assert str(usage_error(raised("onnxruntime"))) == (
        "the package 'onnxruntime' is not installed; pip install -e \".[export]\" (the [export] "
        "extra)")
    assert "pip install -e . (the project's own" in str(usage_error(raised("scipy.optimize")))
    assert usage_error(RuntimeError("not a missing package")) is None
