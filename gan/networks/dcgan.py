"""DCGAN (Radford et al. 2016) sized from the data: 28x28 starts G at 7x7, 32 and 64 at 4x4.

G upsamples by stride-2 transposed convolutions, halving the width each time; D mirrors it with
stride-2 convolutions and LeakyReLU 0.2. D's normalisation is a choice because a WGAN-GP critic
must not use BatchNorm: the penalty is per sample and BatchNorm couples the samples of a batch.

`minibatch_std=G`: D appends the minibatch standard-deviation channel (Karras et al. 2018) over
groups of G images to its last features.

`prior_components=N`: G draws its noise from a learned mixture of N Gaussians (DeLiGAN,
Gurumurthy et al. 2017; gan/networks/mixture_prior.py), a deterministic map of z ~ N(0, I)
applied before anything else reads z; `prior_sigma` is the components' initial std.

`conditional=True`: G reads z concatenated with a label embedding; D becomes a projection
discriminator (Miyato & Koyama 2018) on its flattened features.
"""

from __future__ import annotations

import torch
from torch import nn

from gan.networks.conditional import LabelConcat, Projection, class_count
from gan.networks.layers import norm_layer, num_upsamplings, square_side
from gan.networks.minibatch_std import MinibatchStd
from gan.networks.mixture_prior import mixture_prior


class Generator(nn.Module):
    net_name = "dcgan"  # in errors: model=<name>

    def __init__(self, img_shape, latent_dim: int = 100, width: int = 64, norm: str = "batch",
                 num_classes: int = 0, conditional: bool = False, embed_dim: int = 16,
                 prior_components: int = 0, prior_sigma: float = 0.2):
        super().__init__()
        channels, height = img_shape[0], square_side(img_shape, self.net_name)
        self.img_shape, self.latent_dim = tuple(img_shape), latent_dim
        self.conditional = conditional
        classes = class_count(conditional, num_classes)
        stages = num_upsamplings(height)
        self.base = height >> stages
        self.base_channels = width * 2 ** (stages - 1)
        inputs = latent_dim + (embed_dim if classes else 0)
        self.project = nn.Sequential(
            nn.Linear(inputs, self.base_channels * self.base**2, bias=False),
            nn.Unflatten(1, (self.base_channels, self.base, self.base)),
            norm_layer(norm, self.base_channels),
            nn.ReLU(inplace=True),
        )
        layers, c = [], self.base_channels
        for _ in range(stages - 1):
            layers += [nn.ConvTranspose2d(c, c // 2, 4, 2, 1, bias=False),
                       norm_layer(norm, c // 2), nn.ReLU(inplace=True)]
            c //= 2
        layers += [nn.ConvTranspose2d(c, channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.label_concat = LabelConcat(classes, embed_dim) if classes else None
        # Built last: the other layers draw the same initial weights with the prior as without
        self.prior = mixture_prior(latent_dim, prior_components, prior_sigma)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        z = self.prior(z)  # the mixture sample for this z (the identity without the option)
        if self.label_concat is not None:
            z = self.label_concat(z, labels)  # (B, latent_dim + embed_dim)
        return self.net(self.project(z))  # (B, C, H, W)


class Discriminator(nn.Module):
    net_name = "dcgan"

    def __init__(self, img_shape, width: int = 64, norm: str = "batch", num_classes: int = 0,
                 conditional: bool = False, minibatch_std: int = 0):
        super().__init__()
        self.conditional = conditional
        classes = class_count(conditional, num_classes)
        channels, height = img_shape[0], square_side(img_shape, self.net_name)
        stages = num_upsamplings(height)
        layers, c_in, c = [], channels, width
        for i in range(stages):
            # No normalisation on the first layer (DCGAN paper): it sees raw pixels.
            layers += [nn.Conv2d(c_in, c, 4, 2, 1, bias=(i == 0 or norm == "none")),
                       norm_layer("none" if i == 0 else norm, c),
                       nn.LeakyReLU(0.2, inplace=True)]
            c_in, c = c, c * 2
        self.features = nn.Sequential(*layers)
        # minibatch_std = G > 0: a channel of the batch's diversity (groups of G) before the head
        self.diversity = MinibatchStd(minibatch_std) if minibatch_std else nn.Identity()
        features = (c_in + (1 if minibatch_std else 0)) * (height >> stages) ** 2
        self.head = nn.Linear(features, 1)
        self.projection = Projection(classes, features) if classes else None

    def trunk(self) -> nn.Module:
        """The label-free feature trunk (images -> features) that tricks read: the strided
        convs before the head."""
        return self.features

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = self.diversity(self.features(x)).flatten(1)  # (B, C' * base * base)
        logits = self.head(h).squeeze(1)  # (B,)
        if self.projection is not None:
            logits = logits + self.projection(h, labels)
        return logits
