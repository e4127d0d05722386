"""Training tricks, one small class each.

A trick is a Lightning `Callback` (so it also gets every Lightning hook, its own `state_dict` in
checkpoints, and `setup` before the optimizers and the DDP wrap) plus four hooks the training step
folds over. Each hook is the identity here; a trick overrides the ones it needs:

- `d_input(images, step)`: every image D sees, real or fake, in D and G steps alike.
- `real_target(target, step)`: the target for real images in losses that use targets.
- `d_penalty(critic, real, fake, step)`: a term added to D's loss.
- `sampling_generator(generator)`: the generator grids, generation and metrics use.

`step` counts D updates so far. Adding a trick is one class here plus one YAML in conf/tricks/.
"""

from __future__ import annotations

import lightning as L
import torch


class Trick(L.Callback):
    def d_input(self, images: torch.Tensor, step: int) -> torch.Tensor:
        return images

    def real_target(self, target: float, step: int) -> float:
        return target

    def d_penalty(self, critic, real, fake, step: int) -> torch.Tensor | float:
        return 0.0

    def sampling_generator(self, generator: torch.nn.Module) -> torch.nn.Module:
        return generator


class LabelSmoothing(Trick):
    """One-sided label smoothing (Salimans et al. 2016): real targets `real`, fakes stay 0.

    Smoothing the fake targets too would reward D for leaving fakes near the data, so only the
    real side moves."""

    def __init__(self, real: float = 0.9):
        if not 0.0 < real <= 1.0:
            raise ValueError(f"tricks.label_smoothing.real must be in (0, 1], got {real}")
        self.real = real

    def setup(self, trainer, pl_module, stage):
        if not pl_module.loss.uses_targets:
            raise ValueError(
                f"tricks=[label_smoothing] changes the real target of a loss with targets "
                f"(bce, lsgan); {type(pl_module.loss).__name__} has none. Drop the trick or "
                f"choose loss=bce / loss=lsgan."
            )

    def real_target(self, target, step):
        return target * self.real


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
        pl_module.log("train/instance_noise_sigma", self.sigma_at(pl_module.d_step))
