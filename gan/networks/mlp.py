"""The tutorial's fully connected GAN (G: z->256->512->1024->784, D: 784->1024->512->256->1)."""

from __future__ import annotations

import math

import torch
from torch import nn


class Generator(nn.Module):
    def __init__(self, img_shape, latent_dim: int = 100, hidden=(256, 512, 1024),
                 num_classes: int = 0):
        super().__init__()
        self.img_shape, self.latent_dim = tuple(img_shape), latent_dim
        layers, width = [], latent_dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(inplace=True)]
            width = h
        layers += [nn.Linear(width, math.prod(self.img_shape)), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(z).view(-1, *self.img_shape)  # (B, C, H, W)


class Discriminator(nn.Module):
    def __init__(self, img_shape, hidden=(1024, 512, 256), num_classes: int = 0):
        super().__init__()
        layers, width = [nn.Flatten()], math.prod(img_shape)
        for h in hidden:
            layers += [nn.Linear(width, h), nn.LeakyReLU(0.2, inplace=True)]
            width = h
        # No Sigmoid: losses work on logits (BCEWithLogits is autocast-safe, Sigmoid+BCELoss not).
        layers += [nn.Linear(width, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(x).squeeze(1)  # (B,)
