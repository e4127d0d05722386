"""The minibatch standard-deviation feature (Karras et al. 2018, "Progressive growing of GANs").

A D that judges images one at a time cannot see that a batch of fakes is all alike. This layer
gives it a summary of the batch: split the batch into groups of `group_size`, take the standard
deviation of every feature over each group, average it to one number per group, and append it as
one more constant channel to each image of that group. Real batches are diverse and give a larger
value than a collapsed G's, so D can punish collapse and G is pushed to spread out.
"""

from __future__ import annotations

import torch
from torch import nn


class MinibatchStd(nn.Module):
    """(B, C, H, W) -> (B, C + 1, H, W): the features and their group's mean std over the batch."""

    def __init__(self, group_size: int = 4):
        super().__init__()
        if group_size < 1:
            raise ValueError(f"minibatch_std needs a group size >= 1, got {group_size}")
        self.group_size = group_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        # the largest group size <= group_size that divides the batch (a short last batch)
        g = next(size for size in range(min(self.group_size, b), 0, -1) if b % size == 0)
        groups = x.reshape(g, b // g, c, h, w)  # member i of every group at [i]
        std = (groups.var(dim=0, unbiased=False) + 1e-8).sqrt()  # (B/g, C, H, W)
        stat = std.mean(dim=(1, 2, 3)).reshape(-1, 1, 1, 1)  # (B/g, 1, 1, 1)
        stat = stat.repeat(g, 1, h, w)  # (B, 1, H, W), image j gets its group's value
        return torch.cat([x, stat], dim=1)
