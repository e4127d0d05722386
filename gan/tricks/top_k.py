"""Top-k training of GANs (Sinha et al., NeurIPS 2020): G learns only from its best fakes.

The fakes D rates least real point G's gradient towards places that may pull it off a mode it
already draws well (and, between disconnected modes, towards the blends). Sinha et al. zero the
gradient of all but the k fakes with the highest D score. k starts at the batch size (early on
every fake is bad and every gradient informative) and decays geometrically to a floor,
k_t = max(ceil(floor * B), round(decay ** t * B)). The paper decays per epoch over hundreds of
epochs; our runs are 4 epochs long, so t counts G steps here.
"""

from __future__ import annotations

import math

import torch

from gan.core.trick import Trick


class TopK(Trick):
    """`tricks=[ema,top_k]`: G's loss over the k fakes D scores highest, k annealed per G step
    from the batch size B by `decay` to `floor * B`."""

    def __init__(self, decay: float = 0.9997, floor: float = 0.5):
        if not 0.0 < decay <= 1.0 or not 0.0 < floor <= 1.0:
            raise ValueError(f"tricks.top_k needs 0 < decay <= 1 and 0 < floor <= 1, got "
                             f"decay={decay}, floor={floor}")
        self.decay, self.floor = decay, floor

    def k(self, batch: int, step: int) -> int:
        return max(math.ceil(self.floor * batch), round(self.decay ** step * batch), 1)

    def g_scores(self, scores: torch.Tensor, step: int) -> torch.Tensor:
        return scores.topk(self.k(scores.shape[0], step)).values
