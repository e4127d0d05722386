"""Penalties added to D's loss through the `d_penalty` hook: R1, R2, explicit L2 on weights."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

from gan.core.penalties import squared_grad_norm
from gan.core.trick import Trick
from gan.networks.layers import WEIGHT_LAYERS


class ZeroCenteredGradientPenalty(Trick):
    """gamma/2 * E[||grad_x D(x)||^2] on one side of the batch (Mescheder et al. 2018).

    Lazy regularisation (Karras et al. 2020, StyleGAN2): computed every `interval` D steps and
    multiplied by `interval`, so its average strength is unchanged at 1/interval of the cost."""

    side: str  # "real" (R1) or "fake" (R2)
    double_backward = True

    def __init__(self, gamma: float = 10.0, interval: int = 1):
        if gamma < 0 or interval < 1:
            raise ValueError(f"tricks.{self.side_name} needs gamma >= 0 and interval >= 1, "
                             f"got gamma={gamma}, interval={interval}")
        self.gamma, self.interval = gamma, interval

    @property
    def side_name(self) -> str:
        return type(self).__name__.lower()

    def d_penalty(self, critic, real, fake, step):
        if self.gamma == 0 or step % self.interval:
            return 0.0
        images = real if self.side == "real" else fake
        return self.interval * self.gamma / 2 * squared_grad_norm(critic, images).mean()


class R1(ZeroCenteredGradientPenalty):
    """R1 (Mescheder et al. 2018, "Which training methods for GANs do actually converge?"):
    penalise D's gradient on real data, which makes the Dirac-GAN equilibrium locally stable."""

    side = "real"


class R2(ZeroCenteredGradientPenalty):
    """R2 (Mescheder et al. 2018): the same penalty on generated samples."""

    side = "fake"


class L2Penalty(Trick):
    """Explicit L2 penalty lambda/2 * sum ||W||^2 on D's conv/linear/embedding weights (Krogh &
    Hertz 1992), added to D's loss (logged in train/d_penalty).

    Unlike `optim.weight_decay` it skips biases and normalisation gains, it is the same penalty
    under Adam, RMSprop or SGD (torch's Adam adds weight_decay to the gradient *before* the
    adaptive scaling, AdamW decays decoupled from it: Loshchilov & Hutter 2019). It is
    computed on the trainable tensor (for a spectrally normalised layer the raw W: reading the
    effective weight would run an extra power iteration) and skips frozen layers (freeze_d).
    G has no penalty hook in the training step: decay G through `optim.generator.weight_decay`.
    """

    def __init__(self, weight: float = 1e-4):
        if weight < 0:
            raise ValueError(f"tricks.l2.weight must be >= 0, got {weight}")
        self.weight = weight
        self.layers: list[nn.Module] = []

    def setup(self, trainer, pl_module, stage):
        self.layers = [m for m in pl_module.discriminator.modules() if isinstance(m, WEIGHT_LAYERS)]

    @staticmethod
    def trainable_weight(layer: nn.Module) -> torch.Tensor:
        if parametrize.is_parametrized(layer, "weight"):
            return layer.parametrizations.weight.original
        return layer.weight

    def d_penalty(self, critic, real, fake, step):
        weights = [w for w in map(self.trainable_weight, self.layers) if w.requires_grad]
        if self.weight == 0 or not weights:
            return 0.0
        return self.weight / 2 * sum(w.pow(2).sum() for w in weights)
