"""GAN objectives, one small class each, all on D's logits.

Contract: `d_loss(d_real, d_fake, real_target)` and `g_loss(d_fake)` take logits (B,); a loss
with `needs_real_scores = True` gets `g_loss(d_fake, d_real=...)`, D's scores of the batch's real
images, recomputed in G's step with D frozen and no graph (other losses pay nothing);
`penalty(critic, real, fake)` adds a regulariser that must evaluate D on other images (GP
interpolates), through `critic`, a callable images -> logits with the batch's labels bound.
`n_critic` D steps run per G step; `after_d_step(D)` runs after each D update (weight clipping);
`check(D)` runs once before training to refuse a D the objective cannot train.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gan.core.penalties import gradient_penalty, squared_grad_norm


class GANLoss:
    n_critic: int = 1
    uses_targets = False  # True where `real_target` means something (label smoothing)
    double_backward = False  # True where `penalty` differentiates D's input gradient (compile)
    needs_real_scores = False  # True: `g_loss(d_fake, d_real)` also reads D's real scores
    # True where D's output estimates log p_data/p_g at D's optimum (a calibrated logit), what
    # discriminator rejection sampling reads (sampler=drs refuses the other losses' D).
    calibrated_logit = False

    def __init__(self, n_critic: int = 1):
        if n_critic < 1:
            raise ValueError(f"loss.n_critic must be >= 1, got {n_critic}")
        self.n_critic = n_critic

    def d_loss(self, d_real, d_fake, real_target: float = 1.0) -> torch.Tensor:
        raise NotImplementedError

    def g_loss(self, d_fake, d_real=None) -> torch.Tensor:
        raise NotImplementedError

    def penalty(self, critic, real, fake) -> torch.Tensor | float:
        return 0.0

    def check(self, discriminator: nn.Module) -> None:
        """Refuse a discriminator this objective cannot train; no-op by default."""

    @torch.no_grad()
    def after_d_step(self, discriminator: nn.Module) -> None:
        """Project D's weights after its update; no-op by default."""


def generator_loss(loss: GANLoss, d_fake: torch.Tensor, real_scores) -> torch.Tensor:
    """G's loss on D's scores of the fakes; `real_scores()` (D of the batch's real images, D
    frozen) is called only for a loss that reads them, without a graph: D(real) is a constant
    for G."""
    if not loss.needs_real_scores:
        return loss.g_loss(d_fake)
    with torch.no_grad():
        d_real = real_scores()
    return loss.g_loss(d_fake, d_real=d_real)


class BCE(GANLoss):
    """Non-saturating GAN (Goodfellow et al. 2014): G maximises log D(G(z))."""

    uses_targets = True
    calibrated_logit = True  # D* = p_data / (p_data + p_g): its logit is log p_data / p_g

    def d_loss(self, d_real, d_fake, real_target=1.0):
        return (F.binary_cross_entropy_with_logits(d_real, torch.full_like(d_real, real_target))
                + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))

    def g_loss(self, d_fake, d_real=None):
        return F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake))


class LSGAN(GANLoss):
    """Least squares GAN (Mao et al. 2017), a-b-c = 0-1-1 coding, on the raw logits."""

    uses_targets = True

    def d_loss(self, d_real, d_fake, real_target=1.0):
        return 0.5 * ((d_real - real_target).pow(2).mean() + d_fake.pow(2).mean())

    def g_loss(self, d_fake, d_real=None):
        return 0.5 * (d_fake - 1).pow(2).mean()


class Hinge(GANLoss):
    """Hinge loss (Lim & Ye 2017; Miyato et al. 2018)."""

    def d_loss(self, d_real, d_fake, real_target=1.0):
        return F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()

    def g_loss(self, d_fake, d_real=None):
        return -d_fake.mean()


class RpGAN(GANLoss):
    """Relativistic pairing GAN (Jolicoeur-Martineau 2018, RpGAN; the loss of R3GAN, Huang et
    al. 2024): each fake is judged against a real, D minimises softplus(-(D(real) - D(fake)))
    and G softplus(-(D(fake) - D(real))), means over pairs. G's loss reads D(real), a constant
    for G. Pairs are (real i, fake i); where a trick keeps only some fakes (top-k), they pair
    with the first reals: reals and fakes are independent draws, so any pairing is one.

    `r1_gamma`, `r2_gamma`: R3GAN's objective is RpGAN with both zero-centred gradient
    penalties, gamma/2 E||grad D||^2 on the reals (R1) and on the fakes (R2); without them
    RpGAN does not converge locally (Huang et al. 2024, sec. 2). Part of the loss, so
    `loss=rpgan` is the whole objective; 0 turns a penalty off (`tricks=[r1,r2]` are the same
    penalties for any loss)."""

    needs_real_scores = True

    def __init__(self, n_critic: int = 1, r1_gamma: float = 0.0, r2_gamma: float = 0.0):
        super().__init__(n_critic)
        if r1_gamma < 0 or r2_gamma < 0:
            raise ValueError(f"loss.r1_gamma and loss.r2_gamma must be >= 0, got "
                             f"{r1_gamma} and {r2_gamma}")
        self.r1_gamma, self.r2_gamma = r1_gamma, r2_gamma
        self.double_backward = bool(r1_gamma or r2_gamma)

    def penalty(self, critic, real, fake):
        total = 0.0
        for gamma, images in ((self.r1_gamma, real), (self.r2_gamma, fake)):
            if gamma:
                total = total + gamma / 2 * squared_grad_norm(critic, images).mean()
        return total

    def d_loss(self, d_real, d_fake, real_target=1.0):
        d_real = d_real[: len(d_fake)]
        return F.softplus(-(d_real - d_fake[: len(d_real)])).mean()

    def g_loss(self, d_fake, d_real=None):
        if d_real is None:
            raise ValueError("loss=rpgan: g_loss needs D's real scores (d_real=); the training "
                             "step passes them because RpGAN.needs_real_scores is True")
        return F.softplus(-(d_fake - d_real[: len(d_fake)])).mean()


class Wasserstein(GANLoss):
    """Critic estimate of the Wasserstein-1 distance (Arjovsky et al. 2017); needs D Lipschitz."""

    def __init__(self, n_critic: int = 5):
        super().__init__(n_critic)

    def d_loss(self, d_real, d_fake, real_target=1.0):
        return d_fake.mean() - d_real.mean()

    def g_loss(self, d_fake, d_real=None):
        return -d_fake.mean()


class WGAN(Wasserstein):
    """WGAN: Lipschitz by clipping every weight to [-clip, clip] after each D step."""

    def __init__(self, n_critic: int = 5, clip: float = 0.01):
        super().__init__(n_critic)
        if clip <= 0:
            raise ValueError(f"loss.clip must be > 0, got {clip}")
        self.clip = clip

    @torch.no_grad()
    def after_d_step(self, discriminator):
        for p in discriminator.parameters():
            p.clamp_(-self.clip, self.clip)


def refuse_batchnorm(discriminator: nn.Module, loss_name: str) -> None:
    """A per-sample gradient penalty is meaningless when BatchNorm mixes the batch's samples."""
    found = [n for n, m in discriminator.named_modules()
             if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if found:
        raise ValueError(
            f"loss={loss_name} penalises each sample's gradient, but the critic has BatchNorm "
            f"({', '.join(found[:3])}), which mixes the samples of a batch (Gulrajani et al. "
            f"2017, sec. 4). Use model.discriminator.norm=layer (or instance, none)."
        )


class WGANGP(Wasserstein):
    """WGAN with gradient penalty (Gulrajani et al. 2017), lambda = gp_weight."""

    double_backward = True

    def __init__(self, n_critic: int = 5, gp_weight: float = 10.0):
        super().__init__(n_critic)
        self.gp_weight = gp_weight

    def penalty(self, critic, real, fake):
        return self.gp_weight * gradient_penalty(critic, real, fake)

    def check(self, discriminator):
        refuse_batchnorm(discriminator, "wgan_gp")


class WGANLP(Wasserstein):
    """WGAN with the one-sided Lipschitz penalty (Petzka et al. 2018, "On the regularization of
    Wasserstein GANs"): lambda * E[max(0, ||grad D(x_hat)|| - 1)^2]. Only gradients steeper than 1
    are penalised, which is what 1-Lipschitz asks; GP's two-sided term also pushes flat regions
    of the critic towards slope 1."""

    double_backward = True

    def __init__(self, n_critic: int = 5, lp_weight: float = 10.0):
        super().__init__(n_critic)
        self.lp_weight = lp_weight

    def penalty(self, critic, real, fake):
        return self.lp_weight * gradient_penalty(critic, real, fake, one_sided=True)

    def check(self, discriminator):
        refuse_batchnorm(discriminator, "wgan_lp")
