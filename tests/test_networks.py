"""Architectures (model=mlp|dcgan|resnet|sagan) and conditional generation (model.conditional).

Nets are built from the real model configs, shrunk in width; a few GAN steps on FakeData run
through gan.train.fit with the composed train config. CPU only, well under a minute.
"""

from __future__ import annotations

import copy
from functools import cache

import lightning as L
import pytest
import torch
from omegaconf import DictConfig, open_dict

from gan.io.config import build
from gan.networks import sagan
from gan.networks.sagan import SelfAttention
from gan.runs.wiring import fit
from gan.sampling.sampler import Sampler
from gan.tricks.spectral_norm import apply_spectral_norm
from tests.conftest import compose, compose_train

ARCHS = ("mlp", "dcgan", "resnet", "sagan")
# Narrow nets keep the file fast; the architecture (and what is tested) is unchanged.
SMALL = {
    "mlp": ["model.generator.hidden=[32,32,32]", "model.discriminator.hidden=[32,32,32]"],
    "dcgan": ["model.generator.width=8", "model.discriminator.width=8"],
    "resnet": ["model.generator.width=16", "model.discriminator.width=16"],
    "sagan": ["model.generator.width=16", "model.discriminator.width=16"],
}
SHAPES = [(c, s, s) for s in (28, 32, 64) for c in (1, 3)]
NUM_CLASSES = 10


@cache
def model_config(arch: str, conditional: bool, small: bool = True) -> DictConfig:
    overrides = [f"model={arch}", f"model.conditional={str(conditional).lower()}"]
    return compose("train", *overrides, *(SMALL[arch] if small else []))


def nets(arch: str, conditional: bool, img_shape=(1, 28, 28), small: bool = True):
    cfg = model_config(arch, conditional, small)
    shapes = {"img_shape": img_shape, "num_classes": NUM_CLASSES}
    torch.manual_seed(0)
    return build(cfg.model.generator, **shapes), build(cfg.model.discriminator, **shapes)


def noise(n: int, dim: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("img_shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("conditional", [False, True], ids=["uncond", "cond"])
@pytest.mark.parametrize("arch", ARCHS)
def test_shapes_and_range(arch, conditional, img_shape):
    G, D = nets(arch, conditional, img_shape)
    assert G.conditional is conditional and D.conditional is conditional
    labels = torch.tensor([0, 3, 7, 9])
    # Large z pushes the output towards saturation: a missing tanh would leave [-1, 1].
    fake = G(10 * noise(4, G.latent_dim), labels)
    assert fake.shape == (4, *img_shape)
    assert fake.min() >= -1 and fake.max() <= 1 and fake.std() > 0
    logits = D(fake, labels)
    assert logits.shape == (4,)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("conditional", [False, True], ids=["uncond", "cond"])
@pytest.mark.parametrize("arch", ARCHS)
def test_generator_label_dependence(arch, conditional):
    """Same z, labels 0 vs 1: every image differs iff G is conditional."""
    G, _ = nets(arch, conditional)
    G.eval()  # BatchNorm on running statistics: each sample depends only on its own z and label
    z = noise(4, G.latent_dim)
    with torch.no_grad():
        diff = (G(z, torch.zeros(4, dtype=torch.long)) - G(z, torch.ones(4, dtype=torch.long)))
    per_image = diff.flatten(1).abs().amax(dim=1)  # (B,)
    if conditional:
        assert (per_image > 1e-6).all(), per_image
    else:
        assert (per_image == 0).all(), per_image


@pytest.mark.parametrize("conditional", [False, True], ids=["uncond", "cond"])
@pytest.mark.parametrize("arch", ARCHS)
def test_discriminator_label_dependence(arch, conditional):
    """Same images, labels 0 vs 1: every logit differs iff D is conditional (projection D for
    the conv nets, label concatenation for the MLP)."""
    _, D = nets(arch, conditional)
    D.eval()
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        diff = D(x, torch.zeros(4, dtype=torch.long)) - D(x, torch.ones(4, dtype=torch.long))
    if conditional:
        assert (diff.abs() > 1e-6).all(), diff
    else:
        assert (diff == 0).all(), diff


@pytest.mark.parametrize("arch", ARCHS)
def test_conditional_net_refuses_missing_labels(arch):
    G, D = nets(arch, True)
    with pytest.raises(ValueError, match="labels"):
        G(noise(2, G.latent_dim), None)
    with pytest.raises(ValueError, match="labels"):
        D(torch.zeros(2, 1, 28, 28), None)


@pytest.mark.parametrize(("arch", "g_params", "d_params"),
                         [("mlp", 1_486_352, 1_460_225), ("dcgan", 347_073, 10_097)])
def test_unconditional_defaults_unchanged(arch, g_params, d_params):
    """The default mlp keeps the tutorial's widths; dcgan is the default recipe's G width 32 and
    D width 16 (759,681 / 138,689 at the paper's width 64); conditioning adds nothing when off."""
    G, D = nets(arch, False, small=False)
    assert sum(p.numel() for p in G.parameters()) == g_params
    assert sum(p.numel() for p in D.parameters()) == d_params


@pytest.mark.parametrize("img_shape", [(1, 28, 28), (3, 64, 64)], ids=["28", "64"])
def test_attention_sits_at_attn_res(img_shape):
    G, D = nets("sagan", True, img_shape)
    size = img_shape[1]
    for net in (G, D):
        seen = []  # the width of each feature map an attention block receives
        for m in net.modules():
            if isinstance(m, SelfAttention):
                m.register_forward_hook(lambda _, inputs, out, seen=seen:
                                        seen.append(inputs[0].shape[-1]))
        labels = torch.arange(2)
        net(noise(2, G.latent_dim), labels) if net is G else net(torch.zeros(2, *img_shape), labels)
        assert seen == [size // 2], (type(net).__name__, seen)
    with pytest.raises(ValueError, match="attn_res=28"):
        sagan.Generator((1, 28, 28), width=16, attn_res=28)  # the output size is no hidden size


# ---- a few GAN steps through the real train config ----------------------------------------------


@pytest.fixture(scope="module", params=["resnet", "sagan"])
def trained(request, tmp_path_factory):
    """Two batches of conditional `arch` on FakeData; (run dir, initial weights, module)."""
    arch, out = request.param, tmp_path_factory.mktemp(request.param)
    overrides = ["recipe=unconditional", "data=fake", "data.n=32", "data.batch_size=8",
                 f"model={arch}", "model.conditional=true", "loss=hinge", "trainer.accelerator=cpu",
                 "trainer.max_epochs=1", "trainer.limit_train_batches=2",
                 "trainer.log_every_n_steps=1", "trainer.enable_progress_bar=false",
                 "trainer.enable_model_summary=false", *SMALL[arch]]
    cfg = compose_train(overrides, out)
    with open_dict(cfg):
        del cfg.hydra  # as @hydra.main hands it to train.main

    initial = {}

    class Recording(L.Callback):  # keeps the freshly built nets' weights for comparison
        def setup(self, trainer, pl_module, stage):
            initial.update(copy.deepcopy(pl_module.state_dict()))

    _, module = fit(cfg, callbacks=[Recording()])
    return out, initial, module


def test_training_updates_every_parameter(trained):
    """Every parameter of G and D moved, including the class embeddings (conditional BN gains,
    projection) and the attention weights, so the labels reach both nets' gradients."""
    _, initial, module = trained
    assert module.g_step == 2 and module.d_step == 2
    for net in ("generator", "discriminator"):
        params = dict(getattr(module, net).named_parameters())
        assert any("gain" in n for n in params) or net == "discriminator"
        assert any("projection" in n for n in params) or net == "generator"
        unchanged = [n for n, p in params.items() if torch.equal(p, initial[f"{net}.{n}"])]
        assert not unchanged, f"{net}: {unchanged}"


def test_per_class_grid_written(trained):
    out = trained[0]
    files = sorted(p.name for p in (out / "samples").glob("per_class_*.png"))
    assert files == ["per_class_epoch001.png", "per_class_final.png"]


def test_generate_label_uses_that_class(trained):
    """gan.generate's Sampler with label=7 gives G(z, 7) for its z, not another class."""
    out, _, module = trained
    sampler = Sampler(out / "checkpoints" / "last.ckpt")
    images = sampler(4, label=7, seed=0)
    z = torch.randn(4, module.latent_dim, generator=torch.Generator().manual_seed(0))
    expected = {c: module.sample(z, torch.full((4,), c)) for c in (7, 3)}
    torch.testing.assert_close(images, expected[7])
    assert not torch.allclose(images, expected[3])


@pytest.mark.parametrize("arch", ARCHS)
def test_spectral_norm_keeps_conditional_nets_finite(arch):
    """tricks.spectral_norm also normalises embeddings (projection, conditional BN): an all-zero
    table there would divide 0 by 0."""
    G, D = nets(arch, True)
    apply_spectral_norm(G), apply_spectral_norm(D)
    labels = torch.arange(4)
    fake = G(noise(4, G.latent_dim), labels)
    assert torch.isfinite(fake).all() and torch.isfinite(D(fake, labels)).all()
