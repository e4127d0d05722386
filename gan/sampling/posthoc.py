"""Post-hoc samplers: how a trained generator is sampled, shared by the metrics callback,
`gan.generate` and `gan.evaluate` (the `sampler=` config group, conf/sampler/).

A sampler turns `sample(z, labels)` (a generator in eval mode) into n images. `Plain` draws
z ~ N(0, I); `Truncation` pulls z towards the mean latent by psi; `gan.sampling.rejection.DRS`
rejects what D rates fake. Every metrics.json records `describe()`: which sampler produced the
images, with its settings and what it measured (DRS's acceptance rate).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from gan.core.drawing import draw

Sample = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Critic = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class Plain:
    """z ~ N(0, I): the generator as trained."""

    name = "plain"
    needs_critic = False  # True: `draw` needs D's logits (`critic(images, labels)`)

    def __init__(self):
        self.stats: dict[str, float] = {}

    def latent(self, z: torch.Tensor) -> torch.Tensor:
        return z

    def settings(self) -> dict:
        return {}

    def describe(self) -> dict:
        return {"name": self.name, **self.settings(), **self.stats}

    @torch.no_grad()
    def draw(self, sample: Sample, n: int, latent_dim: int, labels: torch.Tensor, seed: int = 0,
             critic: Critic | None = None, batch_size: int = 500) -> torch.Tensor:
        """n images (N, C, H, W) in [-1, 1] on the CPU, image i drawn for `labels[i]`."""
        return draw(lambda z, y: sample(self.latent(z), y), n, latent_dim, labels, seed,
                    batch_size)


class Truncation(Plain):
    """The truncation trick with psi (Karras et al. 2019's form, BigGAN's idea): z is pulled
    towards the mean latent, z' = mean + psi * (z - mean) with mean 0 for a Gaussian z. psi < 1
    trades variety (recall, coverage) for fidelity (precision): samples stay where the
    generator's density is high, away from the blends between modes."""

    name = "truncation"

    def __init__(self, psi: float = 0.7):
        super().__init__()
        # `sampler.psi=abc` arrives as a string: the same range message, not a type error
        if isinstance(psi, bool) or not isinstance(psi, (int, float)) or not 0.0 <= psi <= 1.0:
            raise ValueError(f"sampler.psi={psi} must be in [0, 1] (1: no truncation)")
        self.psi = psi

    def latent(self, z: torch.Tensor) -> torch.Tensor:
        return self.psi * z

    def settings(self) -> dict:
        return {"psi": self.psi}
