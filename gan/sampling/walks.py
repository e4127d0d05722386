"""Latent walks: what lies between two z, and what the class alone changes.

- `slerp_strips`: for K seeded pairs of z, a row of images along the great circle from one to
  the other. Spherical, not linear: a Gaussian z in many dimensions lies near the sphere of
  radius sqrt(latent_dim), and the straight line between two such points passes well inside it
  where the generator saw no z in training (White 2016, "Sampling Generative Networks").
  A conditional G keeps each row's class fixed while z moves.
- `class_sweeps` (conditional G): K seeded z, each written as every class in turn.

`gan.generate interpolate=K` writes both as PNG; the `Interpolation` callback logs them to
the trackers (TensorBoard, MLflow, W&B) and `<run dir>/samples/` at the end of a training run.
"""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_only
from torchvision.utils import save_image

from gan.core.drawing import to_grid
from gan.sampling.grids import step_of
from gan.sampling.trackers import log_image
from gan.timing.clock import OnTheClock

log = logging.getLogger(__name__)


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation: a (D,), b (D,), t (T,) in [0, 1] -> (T, D); t=0 gives a, t=1 b.
    The norm is interpolated linearly alongside, so endpoints are reproduced exactly."""
    na, nb = a.norm(), b.norm()
    cos = torch.dot(a / na, b / nb).clamp(-1.0, 1.0)
    omega = torch.arccos(cos)
    t = t[:, None]  # (T, 1)
    if omega.abs() < 1e-6:  # (almost) the same direction: lerp is exact enough
        return (1 - t) * a + t * b
    direction = (torch.sin((1 - t) * omega) * a / na + torch.sin(t * omega) * b / nb)
    return direction / torch.sin(omega) * ((1 - t) * na + t * nb)


@torch.no_grad()
def slerp_strips(sample, latent_dim: int, num_classes: int, conditional: bool, pairs: int,
                 steps: int = 8, seed: int = 0, device="cpu") -> torch.Tensor:
    """(pairs * steps, C, H, W): row i walks from z_i to z'_i (class i mod K when conditional)."""
    g = torch.Generator().manual_seed(seed)
    ends = torch.randn(pairs, 2, latent_dim, generator=g)
    t = torch.linspace(0, 1, steps)
    z = torch.cat([slerp(a, b, t) for a, b in ends])  # (pairs * steps, latent_dim)
    labels = None
    if conditional:
        labels = (torch.arange(pairs) % num_classes).repeat_interleave(steps).to(device)
    return sample(z.to(device), labels)


@torch.no_grad()
def class_sweeps(sample, latent_dim: int, num_classes: int, rows: int, seed: int = 0,
                 device="cpu") -> torch.Tensor:
    """(rows * num_classes, C, H, W): row i is one seeded z written as class 0, 1, ..., K-1."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(rows, latent_dim, generator=g).repeat_interleave(num_classes, 0)
    labels = torch.arange(num_classes).repeat(rows)
    return sample(z.to(device), labels.to(device))


class Interpolation(OnTheClock, L.Callback):
    """At the end of training: `samples/interpolation` (slerp strips) and, for a conditional
    G, `samples/class_sweep` to the trackers and `<run dir>/samples/*.png`."""

    def __init__(self, pairs: int = 8, steps: int = 8, seed: int = 0):
        if pairs < 1 or steps < 2:
            raise ValueError(f"callbacks.interpolation: pairs >= 1 and steps >= 2, got "
                             f"pairs={pairs}, steps={steps}")
        self.pairs, self.steps, self.seed = pairs, steps, seed

    @rank_zero_only
    def on_train_end(self, trainer, pl_module):
        with self.paused():  # not training: the training clock stops for it
            self._walks(trainer, pl_module)

    def _walks(self, trainer, model) -> None:
        grids = walk_grids(model, self.pairs, self.steps, self.seed)
        if grids is None:
            log.info("no latent walks: %s has no latent space (latent_dim, decode)",
                     model.describe().get("family", type(model).__name__))
            return
        out = Path(trainer.default_root_dir) / "samples"
        out.mkdir(parents=True, exist_ok=True)
        for name, (images, nrow) in grids.items():
            grid = to_grid(images, nrow)
            save_image(grid, out / f"{name}.png")
            log_image(trainer, f"samples/{name}", grid, step_of(trainer, model))


def walk_grids(model, pairs: int, steps: int, seed: int = 0) -> dict | None:
    """{name: (images, nrow)} of an ImageModel with a latent space: slerp strips, and class
    sweeps when it has labels; None for a model without `latent_dim` and `decode`."""
    latent_dim, decode = getattr(model, "latent_dim", None), getattr(model, "decode", None)
    if latent_dim is None or decode is None:
        return None
    labels = model.spec.labels
    grids = {"interpolation": (slerp_strips(decode, latent_dim, labels.k, labels.conditional,
                                            pairs, steps, seed), steps)}
    if labels.conditional:
        grids["class_sweep"] = (class_sweeps(decode, latent_dim, labels.k, pairs, seed),
                                labels.k)
    return grids
