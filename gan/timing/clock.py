"""Where a run stands: images D has seen, G and D steps, the training clock a budget keeps, and
whether this batch is a log boundary."""

from __future__ import annotations

import contextlib
import logging
import time

import lightning as L

log = logging.getLogger(__name__)


class Clock:
    """A run's clocks, kept across a resume (the Budget callback is one): `train_s`, the
    training alone, stopped while `paused()` (evaluation, grids, checkpoint writes); `eval_s`,
    the paused time; `wall_s`, both."""

    _started: float | None = None   # perf_counter at this session's start; None: not running
    _before: tuple[float, float] = (0.0, 0.0)  # (train_s, eval_s) of earlier sessions
    _paused_s = 0.0                 # this session's paused time so far
    _pause_start: float | None = None
    _depth = 0

    def start_clock(self) -> None:
        self._started, self._paused_s, self._pause_start, self._depth = (
            time.perf_counter(), 0.0, None, 0)

    @contextlib.contextmanager
    def paused(self):
        """Work that is not training: its time counts as evaluation, not against a budget."""
        self._depth += 1
        if self._depth == 1:
            self._pause_start = time.perf_counter()
        try:
            yield
        finally:
            self._depth -= 1
            if self._depth == 0 and self._pause_start is not None:
                self._paused_s += time.perf_counter() - self._pause_start
                self._pause_start = None

    def _session(self) -> tuple[float, float]:
        """(training, paused) seconds of this session."""
        if self._started is None:
            return 0.0, 0.0
        now = time.perf_counter()
        paused = self._paused_s + (now - self._pause_start if self._pause_start else 0.0)
        return now - self._started - paused - self.untimed_s(), paused + self.untimed_s()

    def untimed_s(self) -> float:
        """Paused seconds measured elsewhere (checkpoint writes); 0 here."""
        return 0.0

    def train_s(self) -> float:
        return self._before[0] + self._session()[0]

    def eval_s(self) -> float:
        return self._before[1] + self._session()[1]

    def wall_s(self) -> float:
        return self.train_s() + self.eval_s()


class OnTheClock:
    """A callback whose work is not training (evaluation, grids, walks): the one wiring
    function (gan/runs/wiring.py) hands it the run's clock, which `paused()` stops for a block.
    No clock (a run without a budget, a test): nothing to stop."""

    clock: Clock | None = None

    def paused(self):
        return self.clock.paused() if self.clock is not None else contextlib.nullcontext()


def images_seen(trainer: L.Trainer, pl_module: L.LightningModule) -> int:
    """Real images D has seen, all ranks together: every D step takes one full batch per rank
    (ShuffledBatches drops the ragged end), so this is exact without counting."""
    # A model family without D steps: the batches Lightning has started (public progress).
    steps = getattr(pl_module, "d_step", None)
    if steps is None:
        steps = trainer.fit_loop.epoch_loop.batch_progress.total.processed
    return steps * trainer.datamodule.batch_size * trainer.world_size


def progress(trainer: L.Trainer, pl_module: L.LightningModule, budget: Clock | None) -> dict:
    """Where the run stands, for curves: training seconds (evaluation excluded) and wall
    seconds (from the run's clock, the Budget callback, which keeps them across a resume),
    images seen, G and D steps, epoch."""
    return {"train_s": round(budget.train_s(), 3) if budget else None,
            "wall_s": round(budget.wall_s(), 3) if budget else None,
            "images_seen": images_seen(trainer, pl_module),
            "g_step": getattr(pl_module, "g_step", None),
            "d_step": getattr(pl_module, "d_step", None),
            "epoch": trainer.current_epoch}
