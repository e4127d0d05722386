"""How long a run trains: `budget=epochs|time|images|g_steps` (conf/budget/), and what it spent.

Equal epochs are not equal budgets: WGAN-GP steps G once per 5 batches, and a resnet runs many
times slower than a DCGAN. A comparison fixes the images D sees, the G steps, or the wall time.
At the end the run records its budget and what it spent in `<run dir>/status.json`.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import lightning as L

from gan.core.progress import Clock, images_seen
from gan.io.artefacts import update_status

log = logging.getLogger(__name__)


KINDS = ("epochs", "time", "images", "g_steps")


class Budget(Clock, L.Callback):
    """Stops training when the budget is spent: `images` within one batch, `g_steps` exactly,
    `time` at the first batch past it, `epochs` by the Trainer's own max_epochs."""

    def __init__(self, kind: str = "epochs", value: float | None = None):
        if kind not in KINDS:
            raise ValueError(f"budget.kind must be one of {', '.join(KINDS)}, got {kind!r}")
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
            raise ValueError(f"budget.value must be a number > 0 for budget={kind}, got {value!r}")
        self.kind, self.value = kind, value
        self._wall_before = 0.0  # wall seconds spent before a resume (from the checkpoint)
        self._start: float | None = None
        self._start_images = 0

    # ---- what the run has spent --------------------------------------------------------------

    def wall_s(self) -> float:
        now = time.perf_counter() if self._start is not None else None
        return self._wall_before + (now - self._start if now is not None else 0.0)

    def spent(self, trainer, pl_module) -> float:
        return {"epochs": lambda: trainer.current_epoch,
                "time": self.wall_s,
                "images": lambda: images_seen(trainer, pl_module),
                "g_steps": lambda: pl_module.g_step}[self.kind]()

    def _reached(self, trainer, pl_module) -> bool:
        reached = self.kind != "epochs" and self.spent(trainer, pl_module) >= self.value
        if self.kind == "time" and trainer.world_size > 1:  # clocks differ: rank 0 decides
            reached = trainer.strategy.broadcast(reached, 0)
        return reached

    # ---- Lightning hooks -----------------------------------------------------------------------

    def setup(self, trainer, pl_module, stage):
        if self.kind != "epochs":  # the budget ends the run, not trainer.max_epochs
            trainer.fit_loop.max_epochs = -1

    def on_train_start(self, trainer, pl_module):
        self._start = time.perf_counter()
        self._start_images = images_seen(trainer, pl_module)
        if self._reached(trainer, pl_module):  # a resume of a finished run: only the end runs
            trainer.should_stop = True

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self._reached(trainer, pl_module):
            trainer.should_stop = True

    def on_train_end(self, trainer, pl_module):
        if not trainer.is_global_zero:
            return
        record = self.record(trainer, pl_module)
        update_status(Path(trainer.default_root_dir), **record)
        log.info("budget %s=%g spent: %s", self.kind, self.value,
                 ", ".join(f"{k}={v}" for k, v in record.items() if k != "budget"))

    def record(self, trainer, pl_module) -> dict:
        wall = self.wall_s()
        session = time.perf_counter() - self._start if self._start is not None else 0.0
        seen = images_seen(trainer, pl_module)
        return {"budget": {"kind": self.kind, "value": self.value},
                "wall_s": round(wall, 3), "images_seen": seen,
                "g_step": pl_module.g_step, "d_step": pl_module.d_step,
                "img_per_s": round((seen - self._start_images) / session, 1) if session else None}

    def state_dict(self):
        return {"wall_s": self.wall_s()}

    def load_state_dict(self, state_dict):
        self._wall_before = float(state_dict.get("wall_s", 0.0))
