"""Every option of every config group composes and builds; every model x loss pair trains."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from gan.config import CONF_DIR, build
from gan.module import GAN
from gan.train import fit

GROUPS = ["data", "model", "loss", "optim", "tricks", "trainer", "logger", "callbacks",
          "experiment"]


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (Path(CONF_DIR) / group).glob("*.yaml"))


def test_every_group_has_options():
    for group in GROUPS:
        assert options(group), f"conf/{group}/ is empty"


def make_module(cfg, **shapes) -> GAN:
    shapes = shapes or {"img_shape": (1, 28, 28), "num_classes": 10}
    tricks = [build(node) for node in (cfg.get("tricks") or {}).values()]
    return GAN(build(cfg.model.generator, **shapes), build(cfg.model.discriminator, **shapes),
               build(cfg.loss), build(cfg.optim.generator), build(cfg.optim.discriminator),
               tricks, n_fixed=4, **shapes)


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in options(g)])
def test_option_composes_and_builds(fast_cfg, tmp_path, group, option):
    override = f"{group}=[{option}]" if group == "tricks" else f"{group}={option}"
    if option == "folder":  # your own images: a folder with one PNG
        from PIL import Image
        (tmp_path / "imgs").mkdir()
        Image.new("RGB", (8, 8)).save(tmp_path / "imgs" / "a.png")
        cfg = fast_cfg(override, f"data.root={tmp_path / 'imgs'}", fake_data=False)
    elif group == "experiment":  # a recipe may pick a real dataset: shrink it back to fake data
        cfg = fast_cfg(override, "data=fake", "data.n=128", fake_data=False)
    else:
        cfg = fast_cfg(override, fake_data=group != "data")
    if group == "data":
        dm = build(cfg.data)
        assert len(dm.img_shape) == 3 and dm.num_classes >= 1
    elif group in ("trainer", "logger"):
        assert build(cfg[group]) is not None
    elif group == "callbacks":
        assert all(build(node) is not None for node in cfg.callbacks.values())
    else:  # model, loss, optim, tricks, experiment: the whole GAN builds
        module = make_module(cfg)
        opt_g, opt_d = module.configure_optimizers()
        assert isinstance(opt_g, torch.optim.Optimizer) and isinstance(opt_d, torch.optim.Optimizer)
        images = module.sample(module.fixed_z, module.fixed_labels)
        assert images.shape == (4, 1, 28, 28) and images.abs().max() <= 1


def snapshot(net: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten().clone() for p in net.parameters()])


@pytest.mark.parametrize("model", options("model"))
@pytest.mark.parametrize("loss", options("loss"))
def test_model_loss_pair_trains(fast_cfg, model, loss):
    cfg = fast_cfg(f"model={model}", f"loss={loss}", "callbacks=[]",
                   "logger=tensorboard", "trainer.max_epochs=1")
    n_critic = cfg.loss.n_critic
    for net in (cfg.model.generator, cfg.model.discriminator):
        if "width" in net:  # the conv nets: narrow, same structure
            net.width = 16
    with torch.no_grad():
        before = make_module(cfg)  # same seed -> same initial weights as the trained one
    g0, d0 = snapshot(before.generator), snapshot(before.discriminator)
    cfg.data.n = cfg.data.batch_size * 2 * n_critic  # one epoch = two G steps
    trainer, module = fit(cfg)
    assert module.d_step == 2 * n_critic and module.g_step == 2
    for key in ("train/d_loss", "train/g_loss"):
        assert math.isfinite(float(trainer.callback_metrics[key])), key
    assert not torch.equal(g0, snapshot(module.generator)), "G did not change"
    assert not torch.equal(d0, snapshot(module.discriminator)), "D did not change"


@pytest.mark.parametrize("loss,n_critic", [("bce", 1), ("wgan", 5), ("wgan_gp", 3)])
def test_d_steps_per_g_step_is_n_critic(fast_cfg, loss, n_critic):
    """Counted on the optimizers themselves (Adam/RMSprop keep a per-parameter step)."""
    cfg = fast_cfg("model=mlp", f"loss={loss}", f"loss.n_critic={n_critic}", "callbacks=[]",
                   "trainer.limit_train_batches=6")
    trainer, module = fit(cfg)
    opt_g, opt_d = (opt.optimizer for opt in trainer.optimizers) if hasattr(
        trainer.optimizers[0], "optimizer") else trainer.optimizers
    steps = [int(next(iter(opt.state.values()))["step"]) for opt in (opt_g, opt_d)]
    assert steps == [6 // n_critic, 6]
    assert (module.g_step, module.d_step) == (6 // n_critic, 6)
