"""Pruning: a search's run reports each evaluation to its Optuna trial, and stops when the
study's pruner says the trial is hopeless.

The run may train in another process than the sweeper that asked the trial (joblib, submitit,
another worker), so it reaches the trial through the shared storage and the trial's number
(`hparams_search.trial`, which the sweeper sets per job). What is reported:

- a `val/*` metric (the search's `metric`, val/fid by default): each row of `curve.csv`, i.e.
  each metrics evaluation during training (`callbacks.metrics.every_n_epochs` /
  `every_n_images`), at step = the evaluation's index;
- any other metric (a training loss): its last value at the end of each epoch, step = epoch.

With `hparams_search.seeds=k`, seed i of the trial reports evaluation e at step e*k + i, so each
step holds one seed's value and the pruner compares like with like (seed i of the other trials
at the same evaluation). A pruned run raises `Pruned`; gan.train marks its run folder
`pruned` in status.json and the sweeper tells the trial PRUNED.
"""

from __future__ import annotations

import csv
import logging
import math
from pathlib import Path

import lightning as L

log = logging.getLogger(__name__)


class Pruned(Exception):
    """The study's pruner stopped this trial at an evaluation."""


class ReportToTrial(L.Callback):
    """Report `monitor` at each evaluation to trial number `trial` of the stored study; raise
    `Pruned` when the pruner says so. Inert when `trial` is None (not a search's job)."""

    def __init__(self, storage: str | None, study_name: str | None, trial: int | None,
                 monitor: str | None, pruner=None, seeds: int = 1, seed: int = 0,
                 first_seed: int = 0):
        # which of the trial's seeds this run is (seed - first_seed): given as the two seeds,
        # so a run's config differs from its sibling seeds' in `seed` alone (gan.report)
        self.monitor, self.seeds, self.seed_index = monitor, max(1, seeds), seed - first_seed
        self.active = trial is not None and monitor is not None
        self.trial = None
        self.reported: list[tuple[int, float]] = []  # (step, value), what this run told
        self._rows, self._size = 0, 0
        if self.active:
            from gan.sweeps.storage import load_study, trial_of

            study = load_study(storage, study_name, pruner=pruner)
            self.trial = trial_of(study, int(trial))

    def _curve_values(self, trainer) -> list[float]:
        """The monitor's value in each curve.csv row written since the last call."""
        path = Path(trainer.default_root_dir) / "curve.csv"
        size = path.stat().st_size if path.is_file() else 0
        if size == self._size:  # checked every batch: a stat, not a read
            return []
        self._size = size
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
        new, self._rows = rows[self._rows:], len(rows)
        return [float(r[self.monitor]) for r in new if r.get(self.monitor) not in (None, "")]

    def _report(self, index: int, value: float) -> None:
        if not math.isfinite(value):  # a NaN would poison the median: the guard owns these
            return
        step = index * self.seeds + self.seed_index
        self.trial.report(value, step)
        self.reported.append((step, value))
        if self.trial.should_prune():
            raise Pruned(f"trial {self.trial.number} pruned at step {step} "
                         f"({self.monitor}={value:.4g})")

    def _from_curve(self, trainer) -> None:
        first = self._rows
        for i, value in enumerate(self._curve_values(trainer)):
            self._report(first + i, value)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.active and self.monitor.startswith("val/"):  # every_n_images evaluations
            self._from_curve(trainer)

    def on_train_epoch_end(self, trainer, pl_module):
        if not self.active:
            return
        if self.monitor.startswith("val/"):
            self._from_curve(trainer)
        elif self.monitor in trainer.callback_metrics:
            self._report(trainer.current_epoch, float(trainer.callback_metrics[self.monitor]))
