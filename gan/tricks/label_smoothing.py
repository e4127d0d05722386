"""One-sided label smoothing (Salimans et al. 2016): real targets below 1 in D's loss."""

from __future__ import annotations

from gan.core.trick import Trick


class LabelSmoothing(Trick):
    """One-sided label smoothing (Salimans et al. 2016): real targets `real`, fakes stay 0.

    Smoothing the fake targets too would reward D for leaving fakes near the data, so only the
    real side moves."""

    def __init__(self, real: float = 0.9):
        if not 0.0 < real <= 1.0:
            raise ValueError(f"tricks.label_smoothing.real must be in (0, 1], got {real}")
        self.real = real

    def setup(self, trainer, pl_module, stage):
        if not pl_module.loss.uses_targets:
            raise ValueError(
                f"tricks=[label_smoothing] changes the real target of a loss with targets "
                f"(bce, lsgan); {type(pl_module.loss).__name__} has none. Drop the trick or "
                f"choose loss=bce / loss=lsgan."
            )

    def real_target(self, target, step):
        return target * self.real
