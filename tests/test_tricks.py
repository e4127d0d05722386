"""Tricks beyond the core (spectral norm, EMA, DiffAugment, R1/R2, L2, dropout, FreezeD),
loss=wgan_lp, data=folder and init_from: each checked against its formula, then trained a few
steps through the composed Hydra config."""

from __future__ import annotations

import logging
import math

import pytest
import torch
from PIL import Image
from torch import nn

from gan.core.losses import WGANGP, WGANLP
from gan.data.folder import AugmentedBatches, FolderData, RandomAffine
from gan.io.config import build
from gan.runs.wiring import fit
from gan.sampling.sampler import Sampler
from gan.tricks.diffaugment import DiffAugment
from gan.tricks.dropout import DiscriminatorDropout, InsertedDropout
from gan.tricks.ema import EMA
from gan.tricks.freeze_d import FreezeD, layers_in_order
from gan.tricks.penalties import R1, R2, L2Penalty
from gan.tricks.spectral_norm import effective_weight
from tests.conftest import FAST, TINY_DCGAN, TINY_MLP, UNCONDITIONAL, compose_train, tiny_module


def as_matrix(layer: nn.Module) -> torch.Tensor:
    w = effective_weight(layer)
    if isinstance(layer, nn.ConvTranspose2d):  # SN normalises along dim 1 there
        w = w.transpose(0, 1)
    return w.flatten(1)


def write_png(path, size, colour, mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, colour).save(path)


# ---- spectral norm ---------------------------------------------------------------------------

def test_spectral_norm_makes_every_layer_1_lipschitz(fast_cfg):
    module = tiny_module(fast_cfg(*TINY_DCGAN, "tricks=[spectral_norm]",
                                  "++tricks.spectral_norm.generator=true"))
    layers = [m for net in (module.generator, module.discriminator) for m in net.modules()
              if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]
    assert layers and all(hasattr(m, "parametrizations") for m in layers)
    # Power iteration: one step per training-mode forward (plus 15 at registration).
    for _ in range(100):
        module.discriminator(torch.randn(2, 1, 28, 28))
        module.generator(torch.randn(2, 8))
    for layer in layers:
        sigma = torch.linalg.matrix_norm(as_matrix(layer), ord=2)
        assert sigma == pytest.approx(1.0, abs=2e-3), layer
    # Applied before the optimizers: D's optimizer holds the re-parametrised weights.
    _, opt_d = module.configure_optimizers()
    held = {id(p) for group in opt_d.param_groups for p in group["params"]}
    assert held == {id(p) for p in module.discriminator.parameters()}


def test_spectral_norm_checkpoint_is_plain_and_resumes_exactly(fast_cfg):
    cfg = fast_cfg(*TINY_DCGAN, "tricks=[spectral_norm]")
    module = tiny_module(cfg)
    module.discriminator(torch.randn(2, 1, 28, 28))  # move u, v away from their init
    state = module.state_dict()
    conv = module.discriminator.features[0]
    assert torch.equal(state["discriminator.features.0.weight"], effective_weight(conv))
    # A plain D (what init_from and a rebuilt net see) loads the `discriminator.` keys.
    plain = build(cfg.model.discriminator, img_shape=(1, 28, 28), num_classes=10)
    plain.load_state_dict({k[len("discriminator."):]: v for k, v in state.items()
                           if k.startswith("discriminator.")})
    x = torch.randn(3, 1, 28, 28)
    module.eval(), plain.eval()
    torch.testing.assert_close(plain(x), module.discriminator(x))
    # A fresh SN module gets the exact parametrisation state back (original, u, v).
    fresh = tiny_module(cfg)
    fresh.load_state_dict(state)
    sn = conv.parametrizations.weight
    sn_fresh = fresh.discriminator.features[0].parametrizations.weight
    assert torch.equal(sn.original, sn_fresh.original)
    assert torch.equal(sn[0]._u, sn_fresh[0]._u) and torch.equal(sn[0]._v, sn_fresh[0]._v)


# ---- EMA -------------------------------------------------------------------------------------

def test_ema_update_equals_its_formula(fast_cfg):
    module = tiny_module(fast_cfg(*TINY_DCGAN, "tricks=[]"))  # no EMA but the one built here
    ema = EMA(decay=0.9, start_step=2)
    module.trick_state["ema"] = ema.build_state(module)  # what the GAN's setup does
    ema.bind_state(module.trick_state["ema"])
    assert module.sampling_generator() is module.generator  # tricks were bound at construction
    assert ema.sampling_generator(module.generator) is module.trick_state['ema']
    before = {k: v.clone() for k, v in module.trick_state['ema'].state_dict().items()}
    with torch.no_grad():
        for p in module.generator.parameters():
            p.add_(torch.randn_like(p))
        module.generator.project[2].running_mean.fill_(3.0)
    ema.on_train_start(None, module)
    module.g_step = 3  # > start_step: a real average
    ema.on_train_batch_end(None, module, None, None, 0)
    after = module.trick_state['ema'].state_dict()
    for name, p in module.generator.named_parameters():
        torch.testing.assert_close(after[name], 0.9 * before[name] + 0.1 * p.detach())
    assert torch.equal(after["project.2.running_mean"], torch.full_like(before[
        "project.2.running_mean"], 3.0))  # buffers copied, not averaged
    assert not any(p.requires_grad for p in module.trick_state['ema'].parameters())
    ema.on_train_batch_end(None, module, None, None, 1)  # no new G step: no update
    assert all(torch.equal(after[k], v) for k, v in module.trick_state['ema'].state_dict().items())
    assert ema.decay_at(2) == 0.0  # up to start_step the average copies G
    assert EMA(decay=0.999, start_step=2, warmup=True).decay_at(3) == pytest.approx(2 / 11)


@pytest.fixture(scope="module")
def source_ckpt(tmp_path_factory):
    """A tiny run with EMA and spectral norm on G and D: its module and last.ckpt."""
    run_dir = tmp_path_factory.mktemp("source_run")
    cfg = compose_train([*FAST, *TINY_MLP, "tricks=[ema,spectral_norm]", "++tricks.ema.decay=0.5",
                         "++tricks.spectral_norm.generator=true"], run_dir)
    trainer, module = fit(cfg)
    return module, run_dir / "checkpoints" / "last.ckpt", cfg


def test_ema_weights_survive_checkpoint_and_feed_generate(source_ckpt, fast_cfg):
    module, ckpt_path, cfg = source_ckpt
    ema, generator = module.trick_state['ema'], module.generator
    assert module.sampling_generator() is ema
    plain_ema = {n: effective_weight(m) for n, m in ema.named_modules()
                 if hasattr(m, "parametrizations")}
    assert any(not torch.equal(effective_weight(generator.get_submodule(n)), w)
               for n, w in plain_ema.items())  # the average is not G itself
    # gan.generate rebuilds a plain G from the config and loads the EMA weights.
    sampler = Sampler(ckpt_path)
    for n, w in plain_ema.items():
        assert torch.equal(sampler.generator.get_submodule(n).weight, w)
    # Resuming (setup, then Lightning restores the checkpoint) brings the same EMA back.
    resumed_cfg = fast_cfg(*TINY_MLP, "tricks=[ema,spectral_norm]", "++tricks.ema.decay=0.5",
                           "++tricks.spectral_norm.generator=true", f"ckpt_path={ckpt_path}")
    _, resumed = fit(resumed_cfg)  # max_epochs=1 is already done: restore only, no step
    for (name, p), q in zip(ema.state_dict().items(), resumed.trick_state['ema'].state_dict().values()):
        assert torch.equal(p, q), name


# ---- DiffAugment -----------------------------------------------------------------------------

def shifted(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    out = torch.zeros_like(x)
    h, w = x.shape[-2:]
    out[..., max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)] = \
        x[..., max(dy, 0):h - max(-dy, 0), max(dx, 0):w - max(-dx, 0)]
    return out


def test_diffaugment_same_ops_on_real_and_fake_keeps_shape_and_range():
    torch.manual_seed(0)
    real = torch.rand(8, 1, 16, 16) * 2 - 1
    fake = (torch.rand(8, 1, 16, 16) * 2 - 1).requires_grad_(True)
    for images in (real, fake):  # both pass through the one hook with one policy
        out = DiffAugment("translation").d_input(images, 0)
        for x, y in zip(images, out):  # each image is a shift by at most 2 pixels
            assert any(torch.equal(y, shifted(x, dy, dx))
                       for dy in range(-2, 3) for dx in range(-2, 3))
        out = DiffAugment("cutout").d_input(images, 0)
        changed = out != images
        assert torch.all(out[changed] == 0)  # cutout only zeroes
        assert changed.flatten(1).sum(1).max() <= 64  # at most one 8x8 square per image
        out = DiffAugment("color").d_input(images, 0)  # 1 channel: brightness, contrast
        for x, y in zip(images.detach(), out.detach()):  # an affine map a * x + b per image
            a = torch.cov(torch.stack([x.flatten(), y.flatten()]))[0, 1] / x.var()
            assert 0.5 - 1e-4 <= a <= 1.5 + 1e-4
            torch.testing.assert_close(y, a * x + (y - a * x).mean(), atol=1e-4, rtol=0)
    full = DiffAugment(["color", "translation", "cutout"])
    out = full.d_input(fake, 0)
    assert out.shape == fake.shape and out.abs().max() <= 3.0  # bound in gan/tricks/diffaugment.py
    out.sum().backward()  # differentiable: G's gradient reaches the fakes
    assert fake.grad is not None and fake.grad.abs().sum() > 0
    rgb = full.d_input(torch.rand(4, 3, 8, 8) * 2 - 1, 0)
    assert rgb.shape == (4, 3, 8, 8) and torch.isfinite(rgb).all()


# ---- R1 / R2, L2, LP ---------------------------------------------------------------------------

def test_r1_r2_equal_the_hand_computed_gradient_norm():
    w = torch.randn(1, 2, 3, 3, requires_grad=True)

    def critic(x):  # D(x) = <w, x> + 0.5 ||x||^2, so grad_x D = w + x
        return (w * x).flatten(1).sum(1) + 0.5 * x.pow(2).flatten(1).sum(1)

    real, fake = torch.randn(4, 2, 3, 3), torch.randn(4, 2, 3, 3)
    by_hand = {"real": (w + real).pow(2).flatten(1).sum(1).mean().item(),
               "fake": (w + fake).pow(2).flatten(1).sum(1).mean().item()}
    r1 = R1(gamma=3.0).d_penalty(critic, real, fake, step=0)
    assert r1.item() == pytest.approx(3.0 / 2 * by_hand["real"], rel=1e-5)
    assert R2(gamma=3.0).d_penalty(critic, real, fake, 0).item() == pytest.approx(
        1.5 * by_hand["fake"], rel=1e-5)
    lazy = R1(gamma=3.0, interval=4)
    assert lazy.d_penalty(critic, real, fake, step=1) == 0.0
    assert lazy.d_penalty(critic, real, fake, step=4).item() == pytest.approx(4 * r1.item())
    r1.backward()  # the penalty trains D: it has a gradient w.r.t. D's weights
    assert w.grad is not None and w.grad.abs().sum() > 0


def test_l2_penalty_on_d_weights_only(fast_cfg):
    module = tiny_module(fast_cfg(*UNCONDITIONAL, *TINY_MLP))  # D's weights: its Linear layers
    l2 = L2Penalty(weight=0.1)
    l2.setup(None, module, "fit")
    weights = [m.weight for m in module.discriminator.modules() if isinstance(m, nn.Linear)]
    expected = 0.05 * sum(w.pow(2).sum() for w in weights)
    torch.testing.assert_close(l2.d_penalty(None, None, None, 0), expected)


def test_lp_is_zero_for_a_lipschitz_critic_and_positive_otherwise():
    linear = nn.Linear(16, 1)

    def critic(x):  # ||grad_x D|| = ||w|| everywhere
        return linear(x.flatten(1)).squeeze(1)

    real, fake = torch.randn(8, 1, 4, 4), torch.randn(8, 1, 4, 4)
    with torch.no_grad():
        linear.weight.copy_(torch.randn(1, 16)).div_(linear.weight.norm()).mul_(0.5)
    assert WGANLP(lp_weight=10.0).penalty(critic, real, fake).item() == 0.0
    assert WGANGP(gp_weight=10.0).penalty(critic, real, fake).item() == pytest.approx(2.5)
    with torch.no_grad():
        linear.weight.mul_(4)  # ||w|| = 2: LP = 10 * (2 - 1)^2
    assert WGANLP(lp_weight=10.0).penalty(critic, real, fake).item() == pytest.approx(10.0)
    with pytest.raises(ValueError, match="wgan_lp.*BatchNorm"):
        WGANLP().check(nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)))


# ---- dropout, FreezeD ------------------------------------------------------------------------

def test_dropout_follows_every_hidden_activation(fast_cfg):
    module = tiny_module(fast_cfg(*TINY_DCGAN))
    keys = set(module.discriminator.state_dict())
    DiscriminatorDropout(p=0.4).setup(None, module, "fit")
    DiscriminatorDropout(p=0.4).setup(None, module, "fit")  # idempotent
    drops = [m for m in module.discriminator.modules() if isinstance(m, InsertedDropout)]
    acts = [m for m in module.discriminator.modules() if isinstance(m, nn.LeakyReLU)]
    assert len(drops) == len(acts) == 2 and all(d.p == 0.4 for d in drops)
    assert set(module.discriminator.state_dict()) == keys  # checkpoints still match


def test_freeze_d_freezes_exactly_k_layers(fast_cfg):
    module = tiny_module(fast_cfg(*UNCONDITIONAL, *TINY_DCGAN))  # no projection head
    FreezeD(layers=2).setup(None, module, "fit")
    layers = layers_in_order(module.discriminator)  # conv0, conv1 + norm, head
    frozen = [all(not p.requires_grad for m in layer for p in m.parameters()) for layer in layers]
    assert frozen == [True, True, False]
    assert module.discriminator.features[4].weight.requires_grad is False  # conv1's norm
    with pytest.raises(ValueError, match="would freeze all of D"):
        FreezeD(layers=3).setup(None, tiny_module(fast_cfg(*UNCONDITIONAL, *TINY_DCGAN)), "fit")


# ---- data=folder -----------------------------------------------------------------------------

def test_folder_data_classes_resize_crop_and_one_warning(tmp_path, caplog):
    root = tmp_path / "images"
    for i in range(3):
        write_png(root / "cats" / f"{i}.png", (40, 20), (0, 200, 0))
        write_png(root / "dogs" / f"{i}.jpg", (20, 30), (0, 0, 200))
    wide = Image.new("RGB", (40, 20), (255, 0, 0))  # red sides, green centre square
    wide.paste((0, 200, 0), (10, 0, 30, 20))
    wide.save(root / "cats" / "wide.png")
    (root / "dogs" / "broken.png").write_bytes(b"not a png")
    dm = FolderData(str(root), size=16, channels=3, batch_size=2)
    assert dm.img_shape == (3, 16, 16) and dm.num_classes == 2 and dm._loaded is None
    with caplog.at_level(logging.WARNING, logger="gan.data.folder"):
        dm.setup("fit")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "skipped 1 unreadable" in warnings[0].getMessage()
    assert dm.train_images.shape == (7, 3, 16, 16) and dm.train_images.dtype == torch.uint8
    assert dm.train_labels.tolist() == [0, 0, 0, 0, 1, 1, 1]
    centre = dm.train_images[3]  # wide.png: the centre crop is green
    assert centre[0, :, 4:12].max() <= 10 and centre[1, :, 4:12].min() >= 190
    assert torch.equal(dm.test_split()[0], dm.train_images)  # no held-out split: the train set
    gray = FolderData(str(root / "cats"), size=8, channels=1, batch_size=2)
    assert gray.num_classes == 1 and gray.img_shape == (1, 8, 8)
    gray.setup("fit")
    assert gray.train_images.shape == (4, 1, 8, 8)
    assert not isinstance(gray.train_dataloader(), AugmentedBatches)  # augmentation off
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.png").write_bytes(b"junk")
    with pytest.raises(ValueError, match="none of the 1 image files"):
        FolderData(str(tmp_path / "bad"), size=8).setup("fit")


def test_real_image_augmentation_flips_and_keeps_range():
    x = torch.rand(16, 3, 8, 8) * 2 - 1
    flipped = RandomAffine(hflip=True)(x)
    assert all(torch.equal(y, a) or torch.equal(y, a.flip(2)) for y, a in zip(flipped, x))
    assert any(not torch.equal(y, a) for y, a in zip(flipped, x))
    out = RandomAffine(hflip=True, rotate=15, crop=0.8)(x)
    assert out.shape == x.shape and out.min() >= -1 and out.max() <= 1


# ---- init_from -------------------------------------------------------------------------------

def test_init_from_loads_weights_and_names_mismatched_shapes(source_ckpt, fast_cfg):
    source, ckpt_path, _ = source_ckpt
    # the source's tricks (unconditional nets), one D width changed
    cfg = fast_cfg(*TINY_MLP, "tricks=[ema]", "model.discriminator.hidden=[24]",
                   f"init_from={ckpt_path}")
    with pytest.raises(ValueError, match=r"model\.discriminator\.hidden=\[16\] \(checkpoint\) "
                                         r"vs \[24\] \(this run\)"):
        fit(cfg)
    # callbacks=[]: init_from is part of the run, not a callback that the list can drop
    cfg = fast_cfg(*TINY_MLP, "tricks=[ema]", f"init_from={ckpt_path}",
                   "init_from_parts=[generator]",
                   "callbacks=[]", "trainer.limit_train_batches=0")  # load, train nothing
    _, module = fit(cfg)
    for name, m in source.generator.named_modules():
        if hasattr(m, "parametrizations"):  # the source had SN on G: its effective weight
            assert torch.equal(module.generator.get_submodule(name).weight, effective_weight(m))


# ---- every option composes and trains a few steps ------------------------------------------

@pytest.mark.parametrize("overrides", [
    ["tricks=[spectral_norm]", *TINY_DCGAN],
    ["tricks=[ema]"], ["tricks=[diffaugment]"], ["tricks=[r1]", "++tricks.r1.interval=2"],
    ["tricks=[r2]"], ["tricks=[dropout]"], ["tricks=[l2]"], ["tricks=[freeze_d]"],
    ["loss=wgan_lp", "trainer.limit_train_batches=5"],
    ["tricks=[spectral_norm,ema,diffaugment,r1,dropout,l2,freeze_d]", *TINY_DCGAN],
], ids=lambda o: o[0])
def test_option_trains_and_changes_the_run(fast_cfg, overrides):
    """Each option trains with finite losses AND changes what training produced: D's weights, or
    the images the sampling generator draws (EMA), differ from the same run without it."""
    model = [] if "model=dcgan" in overrides else TINY_MLP
    _, module = fit(fast_cfg(*model, *overrides))
    metrics = module.trainer.callback_metrics
    for key in ("train/d_loss", "train/g_loss", "train/d_penalty"):
        assert math.isfinite(float(metrics[key])), key
    assert module.g_step >= 1
    option = overrides[0]  # the run without it: no tricks, or the default loss
    without = [o for o in overrides if o != option and not o.startswith("++tricks")]
    if option.startswith("tricks"):
        without.append("tricks=[]")
    _, plain = fit(fast_cfg(*model, *without))
    d, d_plain = module.discriminator.state_dict(), plain.discriminator.state_dict()
    d_changed = d.keys() != d_plain.keys() or any(not torch.equal(d[k], d_plain[k]) for k in d)
    drawn = [m.sample(m.fixed_z, m.fixed_labels) for m in (module, plain)]
    assert d_changed or not torch.equal(*drawn), f"{option} changed nothing"


def test_folder_data_trains_via_hydra(fast_cfg, tmp_path):
    for i in range(8):
        write_png(tmp_path / "imgs" / ("a" if i % 2 else "b") / f"{i}.png", (20, 24),
                  (30 * i, 0, 255 - 30 * i))
    # two classes of four images: the labelled cGAN's data (50 clusters need more images)
    cfg = fast_cfg(*UNCONDITIONAL, *TINY_MLP, "data=folder", f"data.root={tmp_path / 'imgs'}",
                   "data.size=16",
                   "data.batch_size=4", "data.augment.hflip=true", fake_data=False)
    trainer, module = fit(cfg)
    assert module.generator.img_shape == (3, 16, 16) and module.hparams.num_classes == 2
    assert math.isfinite(float(trainer.callback_metrics["train/g_loss"]))
