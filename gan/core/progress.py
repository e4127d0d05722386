"""Where a run stands: images D has seen, G and D steps, and the training clock a budget keeps."""

from __future__ import annotations

import logging

import lightning as L

log = logging.getLogger(__name__)


class Clock:
    """Something that keeps a run's training wall time across a resume (the Budget callback)."""

    def wall_s(self) -> float:
        raise NotImplementedError


def images_seen(trainer: L.Trainer, pl_module: L.LightningModule) -> int:
    """Real images D has seen, all ranks together: every D step takes one full batch per rank
    (ShuffledBatches drops the ragged end), so this is exact without counting."""
    return pl_module.d_step * trainer.datamodule.batch_size * trainer.world_size


def progress(trainer: L.Trainer, pl_module: L.LightningModule) -> dict:
    """Where the run stands, for curves: wall seconds (from the Budget callback, which keeps
    them across a resume), images seen, G and D steps, epoch."""
    budget = next((c for c in trainer.callbacks if isinstance(c, Clock)), None)
    return {"wall_s": round(budget.wall_s(), 3) if budget else None,
            "images_seen": images_seen(trainer, pl_module),
            "g_step": pl_module.g_step, "d_step": pl_module.d_step,
            "epoch": trainer.current_epoch}
