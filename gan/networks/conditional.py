"""Pieces every architecture uses to condition on the class label.

- `LabelConcat`: append a learned label embedding to a vector (cGAN, Mirza & Osindero 2014);
  the MLP's G and D and DCGAN's G use it.
- `Projection`: the class term <embed(y), phi(x)> of a projection discriminator (Miyato & Koyama
  2018), added to D's unconditional logit.
- `ConditionalBatchNorm2d`: BatchNorm whose gain and bias are looked up per class (de Vries et al.
  2017; the SNGAN/SAGAN generators); with `num_classes=0` it is an ordinary affine BatchNorm.

Every net takes `num_classes` from the data and `conditional` from `model.conditional`;
`class_count` turns the pair into the number of classes to embed (0 = unconditional).
"""

from __future__ import annotations

import torch
from torch import nn


def class_count(conditional: bool, num_classes: int) -> int:
    if not conditional:
        return 0
    if num_classes < 1:
        raise ValueError("model.conditional=true needs a data set with class labels "
                         f"(num_classes >= 1), got num_classes={num_classes}")
    return num_classes


def check_labels(labels: torch.Tensor | None, batch: int) -> torch.Tensor:
    # Dimension by dimension: comparing the whole shape to a tuple fixes an exported graph's
    # batch size (torch.export specialises it), which gan.export needs to stay dynamic.
    if labels is None or labels.dim() != 1 or labels.shape[0] != batch:
        got = None if labels is None else tuple(labels.shape)
        raise ValueError(f"a conditional net needs labels of shape ({batch},), got {got}")
    return labels


class LabelConcat(nn.Module):
    """x (B, F) -> (B, F + dim): x followed by a learned embedding of its label."""

    def __init__(self, num_classes: int, dim: int):
        super().__init__()
        self.embed = nn.Embedding(num_classes, dim)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.embed(check_labels(labels, x.shape[0]))], dim=1)  # (B, F + dim)


class Projection(nn.Module):
    """The class term y^T V phi(x) of a projection discriminator: features (B, F) -> (B,)."""

    def __init__(self, num_classes: int, features: int):
        super().__init__()
        self.embed = nn.Embedding(num_classes, features)
        # Embedding's default N(0, 1) would dominate the logit when F is in the thousands
        # (DCGAN flattens its features); Glorot keeps it on the scale of the linear head.
        nn.init.xavier_uniform_(self.embed.weight)

    def forward(self, h: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return (self.embed(check_labels(labels, h.shape[0])) * h).sum(dim=1)  # (B,)


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm2d with a per-class gain and bias; `num_classes=0`: plain affine BatchNorm2d.

    The gain is 1 + a per-class offset (BigGAN's form), so spectral norm on G, which also
    normalises embeddings, bounds the offset instead of shrinking the gain itself. Offsets and
    biases start at N(0, 0.02), not 0: classes differ from the first step, and spectral norm of
    an all-zero table is 0/0 = NaN."""

    def __init__(self, channels: int, num_classes: int = 0):
        super().__init__()
        self.num_classes = num_classes
        self.bn = nn.BatchNorm2d(channels, affine=num_classes == 0)
        if num_classes:
            self.gain = nn.Embedding(num_classes, channels)
            self.bias = nn.Embedding(num_classes, channels)
            nn.init.normal_(self.gain.weight, 0.0, 0.02)
            nn.init.normal_(self.bias.weight, 0.0, 0.02)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        x = self.bn(x)
        if not self.num_classes:
            return x
        labels = check_labels(labels, x.shape[0])
        gain = 1 + self.gain(labels)[:, :, None, None]  # (B, C, 1, 1)
        bias = self.bias(labels)[:, :, None, None]  # (B, C, 1, 1)
        return gain * x + bias
