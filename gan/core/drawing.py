"""Drawing images from a generator: the helpers training, generation, evaluation, projection
and export share (entry points import this module, never each other)."""

from __future__ import annotations

import torch
from torch import nn
from torchvision.utils import make_grid


def is_conditional(generator: nn.Module) -> bool:
    """Whether `generator(z, labels)` uses the labels (model.conditional=true)."""
    return bool(getattr(generator, "conditional", False))


def to_grid(images: torch.Tensor, nrow: int = 8) -> torch.Tensor:
    """(B, C, H, W) in [-1, 1] -> one (C, H', W') image in [0, 1]."""
    return make_grid(images.detach().float().cpu(), nrow=nrow, normalize=True,
                     value_range=(-1, 1), pad_value=1.0)


def cycled_labels(n: int, num_classes: int) -> torch.Tensor:
    """0, 1, ..., K-1, 0, 1, ...: the classes asked of a generator unless one label is given
    (metrics score a conditional generator against exactly these)."""
    return torch.arange(n) % max(num_classes, 1)


@torch.no_grad()
def draw(sample, n: int, latent_dim: int, labels: torch.Tensor, seed: int = 0,
         batch_size: int = 500) -> torch.Tensor:
    """`sample(z, labels)` for n seeded noise vectors, in batches; (N, C, H, W) in [-1, 1] on
    the CPU. One noise stream per seed, drawn on the CPU whatever the device of `labels` (where
    z is then sent): a GPU run's metrics and `gan.evaluate` of its checkpoint on the CPU score
    the same z (a CUDA generator's stream differs from the CPU's)."""
    g = torch.Generator().manual_seed(seed)
    chunks = []
    for y in labels.split(batch_size):
        z = torch.randn(len(y), latent_dim, generator=g).to(labels.device)
        chunks.append(sample(z, y).clamp(-1, 1).cpu())
    return torch.cat(chunks)
