"""DeLiGAN's sigma regulariser (Gurumurthy et al. CVPR 2017): keep the mixture prior's
components wide.

G's loss reaches the mixture's sigma (gan/networks/mixture_prior.py) through every fake, and the
easiest way to make each component's fakes look real is to shrink it onto one good point: sigma
goes to 0 and the mixture collapses to N fixed images. DeLiGAN adds

    lambda * sum_i (1 - sigma_i)^2 / N

to G's loss. Their MNIST code averages over the components and the latent dimensions alike
(`reduce_mean(square(sigma - 1)) / 3`), so lambda does not grow with the latent size; this is
that mean, and `weight` = 1/3 is their lambda. The prior itself is a model option of the
generator, not of this trick: the same z must give the same image wherever G is rebuilt
(gan.generate, export), and the weights belong in G's state_dict. This trick only adds the
term, so the training step stays the same with or without it.
"""

from __future__ import annotations

import torch

from gan.core.trick import Trick
from gan.networks.mixture_prior import MixturePrior


class SigmaRegulariser(Trick):
    """`tricks=[ema,mixture_prior]`: `weight * mean((1 - sigma)^2)` over G's mixture prior's
    components and latent dimensions, added to G's loss. Needs a generator with the prior
    (`+model.generator.prior_components=50`, or `+variant=mog`)."""

    def __init__(self, weight: float = 1.0 / 3.0):
        if not weight >= 0:
            raise ValueError(f"tricks.mixture_prior.weight={weight} must be >= 0 (DeLiGAN: 1/3)")
        self.weight = weight
        self.prior: MixturePrior | None = None

    def setup(self, trainer, pl_module, stage):
        prior = getattr(pl_module.generator, "prior", None)
        if not isinstance(prior, MixturePrior):
            raise ValueError("tricks=[mixture_prior] regularises the generator's mixture prior, "
                             "which this generator has not: set "
                             "+model.generator.prior_components=50 (or use +variant=mog)")
        self.prior = prior  # G's own parameters: the G optimizer already trains them

    def penalty(self, sigma: torch.Tensor) -> torch.Tensor:
        return self.weight * (1.0 - sigma).square().mean()

    def g_penalty(self, fake, labels, step):
        return self.penalty(self.prior.sigma)
