"""Dropout in D after every activation (the tutorial's "add noise to D" advice)."""

from __future__ import annotations

from torch import nn

from gan.core.trick import Trick

ACTIVATIONS = (nn.ReLU, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Mish, nn.PReLU)


class InsertedDropout(nn.Dropout):
    """nn.Dropout, marked as the trick's own so a second `setup` does not insert it twice."""


class DiscriminatorDropout(Trick):
    """Dropout after every hidden activation of D (Goodfellow et al. 2014 trained D with dropout;
    Srivastava et al. 2014). Each activation module becomes `Sequential(activation, Dropout(p))`
    in `setup`: after the non-linearity, so every hidden layer's output is dropped and the logit
    layer (no activation after it) is not; activations hold no weights, so checkpoint keys do
    not change and init_from/generate still match."""

    def __init__(self, p: float = 0.3):
        if not 0.0 < p < 1.0:
            raise ValueError(f"tricks.dropout.p must be in (0, 1), got {p}")
        self.p = p

    def setup(self, trainer, pl_module, stage):
        discriminator = pl_module.discriminator
        if any(isinstance(m, InsertedDropout) for m in discriminator.modules()):
            return  # setup ran before (fit after fit)
        targets = [(parent, name, child) for parent in discriminator.modules()
                   for name, child in parent.named_children() if isinstance(child, ACTIVATIONS)]
        if not targets:
            raise ValueError(
                f"tricks=[dropout] found no activation modules in {type(discriminator).__name__} "
                f"(it inserts dropout after nn.ReLU/LeakyReLU/... modules; a functional "
                f"activation in forward() cannot be found)")
        for parent, name, child in targets:
            setattr(parent, name, nn.Sequential(child, InsertedDropout(self.p)))
