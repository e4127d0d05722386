"""Loss values by hand, the gradient penalty, clipping, and the two tricks' math."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gan.core.losses import BCE, LSGAN, WGAN, WGANGP, Hinge, RpGAN, generator_loss
from gan.core.penalties import gradient_penalty
from gan.networks import dcgan
from gan.tricks.instance_noise import InstanceNoise
from gan.tricks.label_smoothing import LabelSmoothing

D_REAL = torch.tensor([2.0, -1.0])
D_FAKE = torch.tensor([0.5, -3.0])


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def test_bce_by_hand():
    # BCE(x, 1) = softplus(-x); BCE(x, 0) = softplus(x)
    d = (softplus(-2) + softplus(1)) / 2 + (softplus(0.5) + softplus(-3)) / 2
    g = (softplus(-0.5) + softplus(3)) / 2
    assert BCE().d_loss(D_REAL, D_FAKE).item() == pytest.approx(d, rel=1e-6)
    assert BCE().g_loss(D_FAKE).item() == pytest.approx(g, rel=1e-6)


def test_bce_smoothed_target_by_hand():
    # BCE(x, t) = -(t log s(x) + (1-t) log(1-s(x))); fakes keep target 0
    def bce(x, t):
        s = 1 / (1 + math.exp(-x))
        return -(t * math.log(s) + (1 - t) * math.log(1 - s))
    d = (bce(2, 0.9) + bce(-1, 0.9)) / 2 + (bce(0.5, 0) + bce(-3, 0)) / 2
    assert BCE().d_loss(D_REAL, D_FAKE, 0.9).item() == pytest.approx(d, rel=1e-6)


def test_lsgan_by_hand():
    d = 0.5 * (((2 - 1) ** 2 + (-1 - 1) ** 2) / 2 + (0.5**2 + 3**2) / 2)
    g = 0.5 * (((0.5 - 1) ** 2 + (-3 - 1) ** 2) / 2)
    assert LSGAN().d_loss(D_REAL, D_FAKE).item() == pytest.approx(d)
    assert LSGAN().g_loss(D_FAKE).item() == pytest.approx(g)


def test_hinge_by_hand():
    d = (max(0, 1 - 2) + max(0, 1 + 1)) / 2 + (max(0, 1 + 0.5) + max(0, 1 - 3)) / 2
    assert Hinge().d_loss(D_REAL, D_FAKE).item() == pytest.approx(d)
    assert Hinge().g_loss(D_FAKE).item() == pytest.approx(1.25)


def test_wasserstein_by_hand():
    assert WGAN().d_loss(D_REAL, D_FAKE).item() == pytest.approx(-1.25 - 0.5)
    assert WGAN().g_loss(D_FAKE).item() == pytest.approx(1.25)


def test_rpgan_by_hand():
    # pairs (2, 0.5) and (-1, -3): D pays softplus(-(real - fake)), G softplus(-(fake - real))
    d = (softplus(-(2 - 0.5)) + softplus(-(-1 + 3))) / 2
    g = (softplus(-(0.5 - 2)) + softplus(-(-3 + 1))) / 2
    assert RpGAN().d_loss(D_REAL, D_FAKE).item() == pytest.approx(d, rel=1e-6)
    assert RpGAN().g_loss(D_FAKE, d_real=D_REAL).item() == pytest.approx(g, rel=1e-6)
    # equal scores: log 2 for both, whatever their level (only the gap counts)
    same = torch.full((3,), 7.0)
    assert RpGAN().d_loss(same, same).item() == pytest.approx(math.log(2))
    assert RpGAN().g_loss(same, d_real=same).item() == pytest.approx(math.log(2))
    with pytest.raises(ValueError, match="d_real"):
        RpGAN().g_loss(D_FAKE)


def test_rpgan_gradient_signs():
    """D's gradient raises real scores and lowers fake ones; G's raises fake scores, by
    sigmoid(-gap) / B each, and none reaches D(real) in G's loss (no graph)."""
    real, fake = D_REAL.clone().requires_grad_(), D_FAKE.clone().requires_grad_()
    RpGAN().d_loss(real, fake).backward()
    gap = (D_REAL - D_FAKE)
    assert torch.allclose(real.grad, -torch.sigmoid(-gap) / 2)  # descent raises D(real)
    assert torch.allclose(fake.grad, torch.sigmoid(-gap) / 2)  # ... and lowers D(fake)
    fake = D_FAKE.clone().requires_grad_()
    calls = []
    g = generator_loss(RpGAN(), fake, lambda: calls.append(1) or D_REAL.clone().requires_grad_())
    g.backward()
    assert calls == [1] and torch.allclose(fake.grad, -torch.sigmoid(gap) / 2)
    # a loss that does not read D(real) never computes it
    generator_loss(BCE(), D_FAKE, lambda: calls.append(2))
    assert calls == [1]


def test_only_bce_claims_a_calibrated_logit():
    from gan.core.losses import WGANLP

    assert BCE.calibrated_logit
    assert not any(c.calibrated_logit for c in (LSGAN, Hinge, WGAN, WGANGP, WGANLP, RpGAN))


def linear_critic(scale: float) -> nn.Module:
    """D(x) = w . x with ||w|| = scale: its input gradient has norm `scale` everywhere."""
    critic = nn.Sequential(nn.Flatten(), nn.Linear(16, 1, bias=False))
    w = torch.randn(1, 16)
    critic[1].weight.data = scale * w / w.norm()
    return critic


def test_gradient_penalty_zero_at_unit_gradient_norm():
    real, fake = torch.randn(8, 1, 4, 4), torch.randn(8, 1, 4, 4)
    assert gradient_penalty(linear_critic(1.0), real, fake).item() == pytest.approx(0, abs=1e-10)
    # ||grad|| = 2 everywhere -> (2 - 1)^2 = 1; scaled by lambda in the loss
    assert gradient_penalty(linear_critic(2.0), real, fake).item() == pytest.approx(1.0)
    assert WGANGP(gp_weight=10).penalty(linear_critic(2.0), real, fake).item() == pytest.approx(10)
    # one-sided (WGAN-LP) ignores norms below 1
    assert gradient_penalty(linear_critic(0.5), real, fake, one_sided=True).item() == 0


def test_gradient_penalty_reaches_the_critic():
    critic, real, fake = linear_critic(2.0), torch.randn(4, 1, 4, 4), torch.randn(4, 1, 4, 4)
    gradient_penalty(critic, real, fake).backward()
    assert critic[1].weight.grad.abs().sum() > 0  # create_graph: D learns from the penalty


def test_weight_clipping_keeps_weights_within_c():
    critic = dcgan.Discriminator((1, 28, 28), width=8, norm="none")
    loss = WGAN(clip=0.01)
    with torch.no_grad():
        for p in critic.parameters():
            p.mul_(100)
    assert max(p.abs().max() for p in critic.parameters()) > 0.01
    loss.after_d_step(critic)
    assert max(p.abs().max() for p in critic.parameters()) <= 0.01


def test_wgan_gp_refuses_batchnorm_critic():
    with pytest.raises(ValueError, match="BatchNorm.*model.discriminator.norm=layer"):
        WGANGP().check(dcgan.Discriminator((1, 28, 28), width=8, norm="batch"))
    WGANGP().check(dcgan.Discriminator((1, 28, 28), width=8, norm="layer"))  # accepted


@pytest.mark.parametrize("bad", [dict(n_critic=0), dict(clip=0.0)])
def test_bad_loss_values_are_refused(bad):
    with pytest.raises(ValueError, match="loss\\."):
        WGAN(**bad)


def test_label_smoothing_targets():
    smooth = LabelSmoothing(real=0.9)
    assert smooth.real_target(1.0, step=0) == pytest.approx(0.9)
    # BCE(x, t) = t softplus(-x) + (1 - t) softplus(x); fake targets stay 0, so the smoothed
    # loss differs from the plain one only on the real side: by 0.1 (softplus(50) - ...) ~ 5
    fake_part = (softplus(0.5) + softplus(-3)) / 2
    smoothed = BCE().d_loss(torch.full((3,), 50.0), D_FAKE, smooth.real_target(1.0, 0))
    assert smoothed.item() == pytest.approx(
        0.9 * softplus(-50) + 0.1 * softplus(50) + fake_part, rel=1e-6)
    plain = BCE().d_loss(torch.full((3,), 50.0), D_FAKE)
    assert (smoothed - plain).item() == pytest.approx(0.1 * 50, rel=1e-4)
    assert BCE().d_loss(torch.full((3,), -50.0), torch.full((3,), -50.0), 0.9).item() == (
        pytest.approx(0.9 * 50 + 0.0, rel=1e-3))  # fakes at -50 cost ~0: their target is 0


def test_instance_noise_schedule_anneals_to_zero():
    noise = InstanceNoise(sigma=0.2, anneal_steps=100)
    assert [noise.sigma_at(s) for s in (0, 50, 100, 1000)] == pytest.approx([0.2, 0.1, 0, 0])
    x = torch.zeros(20_000)
    assert noise.d_input(x, 0).std().item() == pytest.approx(0.2, rel=0.05)
    assert noise.d_input(x, 50).std().item() == pytest.approx(0.1, rel=0.05)
    assert torch.equal(noise.d_input(x, 100), x)


@pytest.mark.parametrize("trick", ["label_smoothing", "instance_noise"])
def test_trick_changes_what_the_training_step_computes(fast_cfg, trick):
    """The module folds the trick in: a loss with and without it differs on the same batch."""
    from gan.runs.wiring import fit
    losses = []
    for tricks in ("[]", f"[{trick}]"):
        cfg = fast_cfg("model=mlp", f"tricks={tricks}", "callbacks=[]",
                       "trainer.limit_train_batches=1")
        trainer, _ = fit(cfg)
        losses.append(float(trainer.callback_metrics["train/d_loss"]))
    assert losses[0] != pytest.approx(losses[1], abs=1e-6)


def test_label_smoothing_refuses_loss_without_targets(fast_cfg):
    from gan.runs.wiring import fit
    cfg = fast_cfg("model=mlp", "loss=hinge", "tricks=[label_smoothing]", "callbacks=[]")
    with pytest.raises(ValueError, match="label_smoothing.*loss=bce"):
        fit(cfg)
