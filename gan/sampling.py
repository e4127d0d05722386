"""Drawing images from a generator: the helpers training, generation, evaluation, projection
and export share (entry points import this module, never each other)."""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import OmegaConf
from torch import nn
from torchvision.utils import make_grid

from gan.checkpoint import generator_weights, load_checkpoint, mismatch_error, shape_errors
from gan.config import build


def is_conditional(generator: nn.Module) -> bool:
    """Whether `generator(z, labels)` uses the labels (model.conditional=true)."""
    return bool(getattr(generator, "conditional", False))


def to_grid(images: torch.Tensor, nrow: int = 8) -> torch.Tensor:
    """(B, C, H, W) in [-1, 1] -> one (C, H', W') image in [0, 1]."""
    return make_grid(images.detach().float().cpu(), nrow=nrow, normalize=True,
                     value_range=(-1, 1), pad_value=1.0)


class Sampler:
    """A generator restored from a training checkpoint, callable as `sampler(n) -> images`."""

    def __init__(self, ckpt_path: str | Path, device: str = "cpu"):
        path = Path(ckpt_path)
        ckpt = load_checkpoint(path)
        hparams = ckpt["hyper_parameters"]
        self.config = OmegaConf.create(hparams["config"])
        self.img_shape = tuple(hparams["img_shape"])
        self.num_classes = hparams["num_classes"]
        self.generator = build(self.config.model.generator, img_shape=self.img_shape,
                               num_classes=self.num_classes)
        weights = generator_weights(ckpt["state_dict"])
        errors = shape_errors("generator", weights, self.generator.state_dict())
        if errors:
            raise mismatch_error(path, "ckpt_path", hparams["config"], hparams["config"], errors)
        self.generator.load_state_dict(weights)
        self.generator.to(device).eval()
        self.device = torch.device(device)

    @torch.no_grad()
    def __call__(self, n: int, label: int | None = None, batch_size: int = 1000,
                 seed: int = 0) -> torch.Tensor:
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        if label is not None and not is_conditional(self.generator):
            raise ValueError("label= needs a conditional checkpoint (trained with "
                             "model.conditional=true)")
        if label is not None and not 0 <= label < self.num_classes:
            raise ValueError(f"label={label} is outside 0..{self.num_classes - 1}")
        labels = (torch.full((n,), label) if label is not None
                  else cycled_labels(n, self.num_classes))
        return draw(self.generator, n, self.generator.latent_dim, labels.to(self.device), seed,
                    batch_size)


def cycled_labels(n: int, num_classes: int) -> torch.Tensor:
    """0, 1, ..., K-1, 0, 1, ...: the classes asked of a generator unless one label is given
    (metrics score a conditional generator against exactly these)."""
    return torch.arange(n) % max(num_classes, 1)


@torch.no_grad()
def draw(sample, n: int, latent_dim: int, labels: torch.Tensor, seed: int = 0,
         batch_size: int = 500) -> torch.Tensor:
    """`sample(z, labels)` for n seeded noise vectors, in batches; (N, C, H, W) in [-1, 1] on
    the CPU. One noise stream per seed, so a checkpoint and its training run draw alike."""
    g = torch.Generator(device=labels.device).manual_seed(seed)
    chunks = []
    for y in labels.split(batch_size):
        z = torch.randn(len(y), latent_dim, generator=g, device=labels.device)
        chunks.append(sample(z, y).clamp(-1, 1).cpu())
    return torch.cat(chunks)
