"""tricks=[info] (gan/tricks/info.py): InfoGAN's code, checked against its formula, its
refusals, and a short fit in which G learns to make the code readable from the image."""

from __future__ import annotations

import pytest
import torch

from gan.runs.wiring import build_module, fit
from gan.tricks.info import InfoGAN

TINY = ["tricks=[ema,info]", "model.generator.conditional=true", "model.latent_dim=8", "model.generator.width=4",
        "model.discriminator.width=4", "tricks.info.width=4"]


def wired(cfg):
    torch.manual_seed(0)
    module, tricks = build_module(cfg)
    for trick in tricks:
        trick.setup(None, module, "fit")
    return module, next(t for t in tricks if isinstance(t, InfoGAN))


def code_accuracy(module, n: int = 512) -> float:
    """How often Q reads back the code G was given (chance: 1/10)."""
    module.eval()
    with torch.no_grad():
        codes = torch.arange(n) % 10
        fake = module.generator(torch.randn(n, module.latent_dim), codes)
        return (module.code_predictor(fake).argmax(1) == codes).float().mean().item()


def test_codes_are_uniform_and_ignore_the_real_labels(fast_cfg):
    _, info = wired(fast_cfg(*TINY))
    labels = torch.full((20_000,), 3)
    codes = info.generator_labels(labels)
    assert codes.shape == labels.shape and codes.dtype == torch.int64
    counts = torch.bincount(codes, minlength=10)
    assert len(counts) == 10
    # 2,000 expected per code; 5 standard deviations is about 212.
    assert counts.min() > 1_780 and counts.max() < 2_220


def test_penalty_is_weighted_cross_entropy_of_q_on_the_code(fast_cfg):
    module, info = wired(fast_cfg(*TINY, "tricks.info.weight=0.5"))
    codes = torch.tensor([0, 3, 9, 3])
    fake = module.generator(torch.randn(4, 8), codes)
    logits = module.code_predictor(fake)
    by_hand = -0.5 * torch.log_softmax(logits, 1)[torch.arange(4), codes].mean()
    penalty = info.g_penalty(fake, codes, step=0)
    assert penalty.item() == pytest.approx(by_hand.item(), rel=1e-5)
    assert logits.shape == (4, 10)
    # Both players of the information term get its gradient: G (through the image) and Q.
    penalty.backward()
    for net in (module.generator, module.code_predictor):
        assert sum(p.grad.abs().sum() for p in net.parameters() if p.grad is not None) > 0
    # G's optimizer trains Q with G; D's does not touch it.
    opt_g, opt_d = module.configure_optimizers()
    held_g = {id(p) for g in opt_g.param_groups for p in g["params"]}
    held_d = {id(p) for g in opt_d.param_groups for p in g["params"]}
    q = {id(p) for p in module.code_predictor.parameters()}
    assert q and q <= held_g and not q & held_d
    assert {id(p) for p in module.generator.parameters()} <= held_g


@pytest.mark.parametrize("overrides, key", [
    (["tricks=[info]"], "model.generator.conditional=true"),
    (["tricks=[info]", "model.conditional=true"], "model.discriminator.conditional=false"),
])
def test_refuses_a_g_without_code_input_or_a_d_that_sees_labels(fast_cfg, overrides, key):
    cfg = fast_cfg(*TINY[2:], *overrides)
    with pytest.raises(ValueError, match=key):
        wired(cfg)


def test_a_short_fit_trains_q_with_g_and_checkpoints_it(fast_cfg):
    # Q learns only through G's optimizer (configure_optimizers, toggled with G): an untrained
    # Q reads the code at chance, a trained one nearly always.
    cfg = fast_cfg(*TINY, "trainer.max_epochs=6", "optim.lr_g=2e-3")
    torch.manual_seed(0)
    before, _ = wired(cfg)
    chance_level = code_accuracy(before)
    _, module = fit(cfg)
    learned = code_accuracy(module)
    assert chance_level < 0.3
    assert learned > 0.6, f"Q reads the code back {learned:.2f} of the time after training"
    state = torch.load(cfg.hydra.runtime.output_dir + "/checkpoints/last.ckpt",
                       weights_only=True)["state_dict"]
    assert any(k.startswith("code_predictor.") for k in state)
