"""Instance noise (Sønderby et al. 2017): Gaussian noise on every image D sees, annealed to 0."""

from __future__ import annotations

import torch

from gan.core.guard import host_number
from gan.core.stepping import log_boundary
from gan.core.trick import Trick


class InstanceNoise(Trick):
    """Gaussian instance noise on D's inputs (Sønderby et al. 2017; Arjovsky & Bottou 2017).

    Noise makes the real and fake distributions overlap, so D's gradient stays informative early
    on; sigma anneals linearly from `sigma` to 0 over `anneal_steps` D steps so it does not blur
    the final samples."""

    def __init__(self, sigma: float = 0.1, anneal_steps: int = 10_000):
        if sigma < 0 or anneal_steps < 1:
            raise ValueError("tricks.instance_noise needs sigma >= 0 and anneal_steps >= 1, "
                             f"got sigma={sigma}, anneal_steps={anneal_steps}")
        self.sigma, self.anneal_steps = sigma, anneal_steps

    def sigma_at(self, step: int) -> float:
        return self.sigma * max(0.0, 1.0 - step / self.anneal_steps)

    def d_input(self, images, step):
        sigma = self.sigma_at(step)
        return images + sigma * torch.randn_like(images) if sigma > 0 else images

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        # When Lightning writes logs (as the step scalars), as a host tensor: a Python number
        # per step would be a host-to-device copy per step (gan.core.guard.host_number).
        if log_boundary(trainer):
            sigma = host_number(self.sigma_at(pl_module.d_step))
            pl_module.log("train/instance_noise_sigma", sigma)
