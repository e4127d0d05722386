"""Layers and sizes every architecture shares, and the one list of weight layers that tricks
(spectral norm, L2, FreezeD) walk."""

from __future__ import annotations

import torch
from torch import nn

# Layers that own a weight matrix or kernel: spectral norm normalises them, L2 penalises them,
# FreezeD counts them.
WEIGHT_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
                 nn.ConvTranspose3d, nn.Linear, nn.Embedding)

NORMS = ("batch", "instance", "layer", "none")

def norm_layer(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "layer":
        return nn.GroupNorm(1, channels)  # one group = LayerNorm over (C, H, W)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}; choose one of {', '.join(NORMS)}")


def square_side(img_shape, net: str) -> int:
    """The side of the square images a conv net builds for, or one line naming the sizes it
    takes (the nets double a square feature map per stage)."""
    _, height, width = img_shape
    if height != width:
        raise ValueError(f"model={net} builds square images with an even side (28, 32, 64, "
                         f"...); got {height}x{width}: resize or crop the data to a square")
    num_upsamplings(height)
    return height


def num_upsamplings(size: int) -> int:
    """How many stride-2 stages lead from a small base (<= 7 pixels) to `size`."""
    stages = 0
    while size % 2 == 0 and size > 7:
        size //= 2
        stages += 1
    if stages == 0:
        raise ValueError(f"the conv nets need an even image size (28, 32, 64 ...), got {size}")
    return stages


@torch.no_grad()
def standing_batchnorm(module: nn.Module, batches) -> None:
    """Re-estimate every BatchNorm's running statistics as the plain mean over `batches` (each a
    tuple of the module's inputs), in train mode; momenta and the train/eval mode restored.
    A module without BatchNorm is left as it is."""
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    momenta, was_training = [m.momentum for m in norms], module.training
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    module.train()
    try:
        for inputs in batches:
            module(*inputs)
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        module.train(was_training)
