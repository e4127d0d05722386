"""SAGAN (Zhang et al. 2019): the residual nets of gan/networks/resnet.py plus one self-attention
block in G and in D, after the blocks whose feature maps are `attn_res` pixels wide.

`attn_res=None` puts it at half the image size (14 for 28x28, 16 for 32, 32 for 64): the paper
found attention helps most on the larger feature maps, and its cost grows as (H*W)^2. The paper
also puts spectral norm on G as well as D and trains with the hinge loss and TTUR
(lr_g 1e-4, lr_d 4e-4, betas (0, 0.9)); those come from the loss, optim and tricks groups.
"""

from __future__ import annotations

import torch
from torch import nn

from gan.networks import resnet
from gan.networks.mixture_prior import mixture_prior


class SelfAttention(nn.Module):
    """x + gamma * attention(x) over all H*W positions; gamma starts at 0, so the block starts as
    the identity and the nets lean on local convolutions first (the paper's reason).

    Query and key have C/8 channels (the paper); value C/2 (BigGAN's implementation). Plain
    matmul + softmax rather than scaled_dot_product_attention: the fused GPU kernels have no
    double backward, which a gradient penalty (wgan_gp, r1) needs through D."""

    def __init__(self, channels: int):
        super().__init__()
        inner = max(channels // 8, 1)
        self.query = nn.Conv2d(channels, inner, 1, bias=False)
        self.key = nn.Conv2d(channels, inner, 1, bias=False)
        self.value = nn.Conv2d(channels, max(channels // 2, 1), 1, bias=False)
        self.out = nn.Conv2d(max(channels // 2, 1), channels, 1, bias=False)
        self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        b, _, h, w = x.shape
        q = self.query(x).flatten(2)  # (B, C/8, N), N = H*W
        k = self.key(x).flatten(2)  # (B, C/8, N)
        v = self.value(x).flatten(2)  # (B, C/2, N)
        attn = torch.softmax(q.transpose(1, 2) @ k, dim=-1)  # (B, N, N): row i attends over j
        o = (v @ attn.transpose(1, 2)).view(b, -1, h, w)  # (B, C/2, H, W)
        return x + self.gamma * self.out(o)


def insert_attention(net: nn.Module, attn_res: int | None, size: int, channels: int) -> None:
    """Insert a SelfAttention after the last of `net.blocks` whose output is `attn_res` wide."""
    res = size // 2 if attn_res is None else attn_res
    valid = sorted({r for r in net.resolutions if r < size})
    if res not in valid:
        raise ValueError(f"model.attn_res={res} is no feature-map size of this "
                         f"{type(net).__name__} for {size}x{size} images; choose one of {valid} "
                         f"(or null: {size // 2})")
    i = len(net.resolutions) - net.resolutions[::-1].index(res)  # just after the last such block
    net.blocks.insert(i, SelfAttention(channels))
    net.resolutions.insert(i, res)


class Generator(resnet.Generator):
    net_name = "sagan"

    def __init__(self, img_shape, latent_dim: int = 128, width: int = 128, blocks: int = 1,
                 attn_res: int | None = None, num_classes: int = 0, conditional: bool = False,
                 prior_components: int = 0, prior_sigma: float = 0.2):
        super().__init__(img_shape, latent_dim, width, blocks, num_classes, conditional)
        insert_attention(self, attn_res, img_shape[1], width)
        # after the attention block, as resnet's G builds it last: the other weights start alike
        self.prior = mixture_prior(latent_dim, prior_components, prior_sigma)


class Discriminator(resnet.Discriminator):
    net_name = "sagan"

    def __init__(self, img_shape, width: int = 128, blocks: int = 1, attn_res: int | None = None,
                 norm: str = "none", num_classes: int = 0, conditional: bool = False):
        super().__init__(img_shape, width, blocks, norm, num_classes, conditional)
        insert_attention(self, attn_res, img_shape[1], width)
