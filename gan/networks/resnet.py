"""Residual G and D in the SNGAN style (Miyato et al. 2018), sized from the data.

G: z -> linear -> (width, base, base) -> one upsampling residual block per stage (28x28: 7 -> 14
-> 28; 32 and 64 start at 4x4) -> BN-ReLU-conv3x3-tanh. D mirrors it with downsampling blocks,
then ReLU, global sum pooling and a linear head. `width` channels throughout (SNGAN's CIFAR
nets); `blocks` residual blocks per resolution, the first of each stage resamples.

`conditional=True`: conditional BatchNorm in G's blocks and a projection D (Miyato & Koyama
2018). SNGAN's D has no normalisation because spectral norm keeps it in check; `norm` is there
for losses that ask for one (wgan_gp sets critic_norm: layer).

`prior_components=N` (G): z passes a learned mixture of N Gaussians first (DeLiGAN;
gan/networks/mixture_prior.py).

Each net lists in `resolutions` the feature-map size after each of its blocks, so a subclass can
insert blocks at a resolution (gan/networks/sagan.py adds self-attention that way).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from gan.networks.conditional import ConditionalBatchNorm2d, Projection, class_count
from gan.networks.layers import norm_layer, num_upsamplings, square_side
from gan.networks.mixture_prior import mixture_prior


def conv(c_in: int, c_out: int, kernel: int, gain: float = 1.0) -> nn.Conv2d:
    """A 'same' conv with SNGAN's init: Glorot, gain sqrt(2) in the residual path, 1 elsewhere."""
    layer = nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2)
    nn.init.xavier_uniform_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


class GBlock(nn.Module):
    """BN-ReLU-(up)-conv3x3-BN-ReLU-conv3x3 plus a shortcut; upsamples 2x (nearest) when `up`."""

    def __init__(self, c_in: int, c_out: int, num_classes: int = 0, up: bool = True):
        super().__init__()
        self.up = up
        self.bn1 = ConditionalBatchNorm2d(c_in, num_classes)
        self.conv1 = conv(c_in, c_out, 3, math.sqrt(2))
        self.bn2 = ConditionalBatchNorm2d(c_out, num_classes)
        self.conv2 = conv(c_out, c_out, 3, math.sqrt(2))
        self.shortcut = conv(c_in, c_out, 1) if (up or c_in != c_out) else nn.Identity()

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = F.relu(self.bn1(x, labels))
        # A 1x1 conv commutes with nearest upsampling: run it at the low resolution (4x cheaper).
        skip = self.shortcut(x)
        if self.up:
            h, skip = F.interpolate(h, scale_factor=2), F.interpolate(skip, scale_factor=2)
        h = self.conv2(F.relu(self.bn2(self.conv1(h), labels)))
        return h + skip  # (B, c_out, H', W')


class DBlock(nn.Module):
    """(norm)-ReLU-conv3x3-(norm)-ReLU-conv3x3-(avgpool) plus a shortcut.

    `first`: SNGAN's 'optimized' block, which sees raw pixels, so no norm or ReLU before its
    first conv."""

    def __init__(self, c_in: int, c_out: int, down: bool = True, first: bool = False,
                 norm: str = "none"):
        super().__init__()
        self.down, self.first = down, first
        self.norm1 = nn.Identity() if first else norm_layer(norm, c_in)
        self.conv1 = conv(c_in, c_out, 3, math.sqrt(2))
        self.norm2 = norm_layer(norm, c_out)
        self.conv2 = conv(c_out, c_out, 3, math.sqrt(2))
        self.shortcut = conv(c_in, c_out, 1) if (down or c_in != c_out) else nn.Identity()

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = x if self.first else F.relu(self.norm1(x))
        h = self.conv2(F.relu(self.norm2(self.conv1(h))))
        # Average pooling commutes with a 1x1 conv: pool first, so the conv runs 4x smaller.
        skip = F.avg_pool2d(x, 2) if self.down else x
        if self.down:
            h = F.avg_pool2d(h, 2)
        return h + self.shortcut(skip)  # (B, c_out, H', W')


def pooled(blocks: nn.ModuleList, x: torch.Tensor) -> torch.Tensor:
    """D's blocks, then ReLU and SNGAN's global sum pooling: images -> (B, width)."""
    for block in blocks:
        x = block(x)
    return F.relu(x).sum(dim=(2, 3))  # (B, width)


class Trunk(nn.Module):
    """A view of a residual D's blocks (the same modules, not a copy) as one module."""

    def __init__(self, blocks: nn.ModuleList):
        super().__init__()
        self.blocks = blocks

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pooled(self.blocks, x)


class Generator(nn.Module):
    net_name = "resnet"  # in errors: model=<name>

    def __init__(self, img_shape, latent_dim: int = 128, width: int = 128, blocks: int = 1,
                 num_classes: int = 0, conditional: bool = False, prior_components: int = 0,
                 prior_sigma: float = 0.2):
        super().__init__()
        channels, size = img_shape[0], square_side(img_shape, self.net_name)
        if blocks < 1:
            raise ValueError(f"model.generator.blocks must be >= 1, got {blocks}")
        self.img_shape, self.latent_dim, self.width = tuple(img_shape), latent_dim, width
        self.conditional = conditional
        classes = class_count(conditional, num_classes)
        stages = num_upsamplings(size)
        self.base = size >> stages
        self.project = nn.Linear(latent_dim, width * self.base**2)
        self.blocks, self.resolutions = nn.ModuleList(), []
        for stage in range(1, stages + 1):
            for i in range(blocks):
                self.blocks.append(GBlock(width, width, classes, up=i == 0))
                self.resolutions.append(self.base << stage)
        # SNGAN's last BatchNorm is unconditional: the class has entered through every block.
        self.out = nn.Sequential(nn.BatchNorm2d(width), nn.ReLU(), conv(width, channels, 3),
                                 nn.Tanh())
        # Built last: the other layers draw the same initial weights with the prior as without
        self.prior = mixture_prior(latent_dim, prior_components, prior_sigma)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        z = self.prior(z)  # the mixture sample for this z (the identity without the option)
        h = self.project(z).view(-1, self.width, self.base, self.base)  # (B, width, base, base)
        for block in self.blocks:
            h = block(h, labels)
        return self.out(h)  # (B, C, H, W)


class Discriminator(nn.Module):
    net_name = "resnet"

    def __init__(self, img_shape, width: int = 128, blocks: int = 1, norm: str = "none",
                 num_classes: int = 0, conditional: bool = False):
        super().__init__()
        channels, size = img_shape[0], square_side(img_shape, self.net_name)
        if blocks < 1:
            raise ValueError(f"model.discriminator.blocks must be >= 1, got {blocks}")
        self.conditional = conditional
        classes = class_count(conditional, num_classes)
        self.blocks, self.resolutions = nn.ModuleList(), []
        c_in = channels
        for stage in range(1, num_upsamplings(size) + 1):
            for i in range(blocks):
                first = stage == 1 and i == 0
                self.blocks.append(DBlock(c_in, width, down=i == 0, first=first, norm=norm))
                self.resolutions.append(size >> stage)
                c_in = width
        self.head = nn.Linear(width, 1)
        self.projection = Projection(classes, width) if classes else None

    def trunk(self) -> nn.Module:
        """The label-free feature trunk (images -> (B, width)) that tricks read."""
        return Trunk(self.blocks)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = pooled(self.blocks, x)  # (B, width)
        logits = self.head(h).squeeze(1)  # (B,)
        if self.projection is not None:
            logits = logits + self.projection(h, labels)
        return logits
