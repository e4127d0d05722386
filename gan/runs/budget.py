"""How long a run trains: `budget=epochs|time|images|g_steps` (conf/budget/), and what it spent.

Equal epochs are not equal budgets: WGAN-GP steps G once per 5 batches, and a resnet runs many
times slower than a DCGAN. A comparison fixes the images D sees, the G steps, or the wall time.
At the end the run records its budget and what it spent in `<run dir>/status.json`: `train_s`
(the training clock, which `budget=time` counts: it stops during evaluation, sample grids and
checkpoint writes), `eval_s` (that stopped time), `wall_s` (both) and `cpu_s` (the process's CPU
time, all threads, everything included).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import lightning as L

from gan.core.stepping import log_boundary
from gan.io.artefacts import update_status
from gan.timing.clock import Clock, images_seen

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
        self._start_images = 0
        self._cpu_before = 0.0     # process CPU seconds of earlier sessions
        self._cpu_start = 0.0
        self._io = None            # the Trainer's checkpoint IO, which times its writes
        self._io_start = 0.0
        self._compiling = None     # the pause of a compiled run's first step (its compilation)

    # ---- what the run has spent --------------------------------------------------------------

    def untimed_s(self) -> float:
        return getattr(self._io, "seconds", 0.0) - self._io_start  # checkpoint writes

    def cpu_s(self) -> float:
        return self._cpu_before + time.process_time() - self._cpu_start

    def spent(self, trainer, pl_module) -> float:
        return {"epochs": lambda: trainer.current_epoch,
                "time": self.train_s,
                "images": lambda: images_seen(trainer, pl_module),
                "g_steps": lambda: pl_module.g_step}[self.kind]()

    def _reached(self, trainer, pl_module) -> bool:
        if self.kind == "time" and trainer.world_size > 1:
            # Clocks differ between ranks, so they must agree: one all-reduce of one flag (any
            # rank out of time stops all), and only at log boundaries, so a step pays no
            # cross-rank sync or pickled broadcast; the run overshoots by < log_every_n_steps.
            if not log_boundary(trainer):
                return False
            return trainer.strategy.reduce_boolean_decision(
                self.spent(trainer, pl_module) >= self.value, all=False)
        return self.kind != "epochs" and self.spent(trainer, pl_module) >= self.value

    # ---- Lightning hooks -----------------------------------------------------------------------

    def setup(self, trainer, pl_module, stage):
        if self.kind != "epochs":  # the budget ends the run, not trainer.max_epochs
            trainer.fit_loop.max_epochs = -1

    def on_train_start(self, trainer, pl_module):
        self._io = getattr(trainer.strategy, "checkpoint_io", None)
        self._io_start = getattr(self._io, "seconds", 0.0)
        self._cpu_start = time.process_time()
        self.start_clock()
        self._start_images = images_seen(trainer, pl_module)
        if self._reached(trainer, pl_module):  # a resume of a finished run: only the end runs
            trainer.should_stop = True

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        # compile=true: torch.compile compiles at the first step; that is not training either
        if self._compiling is None and compiled(pl_module):
            self._compiling = self.paused()
            self._compiling.__enter__()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self._compiling:
            self._compiling.__exit__(None, None, None)
            self._compiling = False
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
        session = self._session()[0]
        seen = images_seen(trainer, pl_module)
        return {"budget": {"kind": self.kind, "value": self.value},
                "train_s": round(self.train_s(), 3), "eval_s": round(self.eval_s(), 3),
                "wall_s": round(self.wall_s(), 3), "cpu_s": round(self.cpu_s(), 3),
                "images_seen": seen, "g_step": pl_module.g_step, "d_step": pl_module.d_step,
                # images per second of training alone, this session
                "img_per_s": round((seen - self._start_images) / session, 1) if session else None}

    def state_dict(self):
        return {"train_s": self.train_s(), "eval_s": self.eval_s(), "cpu_s": self.cpu_s()}

    def load_state_dict(self, state_dict):
        # A checkpoint from before the split clocks holds `wall_s` alone (evaluation included).
        self._before = (float(state_dict.get("train_s", state_dict.get("wall_s", 0.0))),
                        float(state_dict.get("eval_s", 0.0)))
        self._cpu_before = float(state_dict.get("cpu_s", 0.0))


def compiled(pl_module) -> bool:
    """Whether G or D was compiled in place (`nn.Module.compile`, gan/runs/compile.py)."""
    return any(getattr(getattr(pl_module, part, None), "_compiled_call_impl", None) is not None
               for part in ("generator", "discriminator"))
