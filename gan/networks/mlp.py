"""The tutorial's fully connected GAN (G: z->256->512->1024->784, D: 784->1024->512->256->1).

`conditional=True` makes it a cGAN (Mirza & Osindero 2014): a learned label embedding is
concatenated to z in G and to the flattened image in D. Unconditional, it is the tutorial's net.

`prior_components=N` (G): z passes a learned mixture of N Gaussians first (DeLiGAN;
gan/networks/mixture_prior.py).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from gan.networks.conditional import LabelConcat, class_count
from gan.networks.mixture_prior import mixture_prior


class Generator(nn.Module):
    def __init__(self, img_shape, latent_dim: int = 100, hidden=(256, 512, 1024),
                 num_classes: int = 0, conditional: bool = False, embed_dim: int = 16,
                 prior_components: int = 0, prior_sigma: float = 0.2):
        super().__init__()
        self.img_shape, self.latent_dim = tuple(img_shape), latent_dim
        self.conditional = conditional
        classes = class_count(conditional, num_classes)
        layers, width = [], latent_dim + (embed_dim if classes else 0)
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(inplace=True)]
            width = h
        layers += [nn.Linear(width, math.prod(self.img_shape)), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.label_concat = LabelConcat(classes, embed_dim) if classes else None
        # Built last: the other layers draw the same initial weights with the prior as without
        self.prior = mixture_prior(latent_dim, prior_components, prior_sigma)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        z = self.prior(z)  # the mixture sample for this z (the identity without the option)
        if self.label_concat is not None:
            z = self.label_concat(z, labels)  # (B, latent_dim + embed_dim)
        return self.net(z).view(-1, *self.img_shape)  # (B, C, H, W)


class Discriminator(nn.Module):
    def __init__(self, img_shape, hidden=(1024, 512, 256), num_classes: int = 0,
                 conditional: bool = False, embed_dim: int = 16):
        super().__init__()
        self.conditional = conditional
        classes = class_count(conditional, num_classes)
        # The Flatten stays first so parameter names (net.1.weight, ...) match older checkpoints.
        layers, width = [nn.Flatten()], math.prod(img_shape) + (embed_dim if classes else 0)
        for h in hidden:
            layers += [nn.Linear(width, h), nn.LeakyReLU(0.2, inplace=True)]
            width = h
        # No Sigmoid: losses work on logits (BCEWithLogits is autocast-safe, Sigmoid+BCELoss not).
        layers += [nn.Linear(width, 1)]
        self.net = nn.Sequential(*layers)
        self.label_concat = LabelConcat(classes, embed_dim) if classes else None

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = x.flatten(1)  # (B, C*H*W)
        if self.label_concat is not None:
            h = self.label_concat(h, labels)  # (B, C*H*W + embed_dim)
        return self.net(h).squeeze(1)  # (B,)
