"""The tutorial's fully connected GAN (G: z->256->512->1024->784, D: 784->1024->512->256->1).

`conditional=True` makes it a cGAN (Mirza & Osindero 2014): a learned label embedding is
concatenated to z in G and, with `projection=False`, to the flattened image in D (the
tutorial's cGAN). With `projection=True` (conf/model/mlp.yaml) D is a projection discriminator
(Miyato & Koyama 2018) on its last hidden layer instead, so its trunk never sees the label and
the self-conditioned GAN can cluster it. Unconditional, it is the tutorial's net.

`prior_components=N` (G): z passes a learned mixture of N Gaussians first (DeLiGAN;
gan/networks/mixture_prior.py).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from gan.networks.conditional import LabelConcat, Projection, class_count
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
                 conditional: bool = False, embed_dim: int = 16, projection: bool = False):
        super().__init__()
        self.conditional = conditional
        classes = class_count(conditional, num_classes)
        concat = classes and not projection
        # The Flatten stays first so parameter names (net.1.weight, ...) match older checkpoints.
        layers, width = [nn.Flatten()], math.prod(img_shape) + (embed_dim if concat else 0)
        for h in hidden:
            layers += [nn.Linear(width, h), nn.LeakyReLU(0.2, inplace=True)]
            width = h
        # No Sigmoid: losses work on logits (BCEWithLogits is autocast-safe, Sigmoid+BCELoss not).
        layers += [nn.Linear(width, 1)]
        self.net = nn.Sequential(*layers)
        self.label_concat = LabelConcat(classes, embed_dim) if concat else None
        self.projection = Projection(classes, width) if classes and projection else None

    def trunk(self) -> nn.Module:
        """The label-free feature trunk (images -> (B, hidden[-1])) that tricks read."""
        if self.label_concat is not None:
            raise ValueError("this MLP D reads the label at its input "
                             "(model.discriminator.projection=false), so it has no label-free "
                             "features: set model.discriminator.projection=true")
        return self.net[:-1]

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.label_concat is not None:  # the tutorial's cGAN: the label joins the pixels
            return self.net(self.label_concat(x.flatten(1), labels)).squeeze(1)  # (B,)
        h = self.net[:-1](x)  # (B, hidden[-1])
        logits = self.net[-1](h).squeeze(1)  # (B,)
        if self.projection is not None:
            logits = logits + self.projection(h, labels)
        return logits
