"""A sweep dir holds one sweep. A second `-m` into it either continues that sweep (the same
overrides: finished jobs are skipped, cut ones resume, gan.train) or is refused in one line
naming the overrides that differ; `overwrite=true` moves the old sweep aside (never deletes it).

`<sweep dir>/.sweep.lock` (gan/runs/lock.py) is taken before Hydra writes anything there, and
held to the sweep's end: two sweeps into one dir at once would write the same job folders, so
the second is refused, naming the first. An Optuna search is the exception: many workers feed
one study on purpose, each trial in a folder of its own number.

`sweep_overrides.txt` records the sweep's overrides (what defines its jobs), one a line.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from gan.io.files import atomic_write, check_output_dir
from gan.io.usage import UsageError, exit_for
from gan.runs.folder import BOOKKEEPING, move_aside
from gan.runs.lock import (
    LOCK,
    SWEEP_LOCK,
    acquire,
    archive_configs,
    busy_message,
    held_by_other,
    release,
)

log = logging.getLogger(__name__)

OVERRIDES = "sweep_overrides.txt"
KEY = "hydra.sweep.dir"


def defining(overrides) -> list[str]:
    """The overrides that define a sweep's jobs (not how they are run)."""
    return [str(o) for o in overrides
            if str(o).lstrip("+~").split("=", 1)[0] not in BOOKKEEPING]


def recorded(sweep_dir: Path) -> list[str] | None:
    """The overrides of the sweep already in `sweep_dir` (from its record, or from Hydra's
    multirun.yaml for a sweep from before the record), or None for a fresh dir."""
    if (sweep_dir / OVERRIDES).is_file():
        return [line for line in (sweep_dir / OVERRIDES).read_text().splitlines() if line]
    if (sweep_dir / "multirun.yaml").is_file():
        try:
            saved = OmegaConf.load(sweep_dir / "multirun.yaml")
            return defining(OmegaConf.select(saved, "hydra.overrides.task") or [])
        except Exception:  # unreadable: judged by its job folders alone
            return None
    return None


def is_shared(config: DictConfig) -> bool:
    """An Optuna search: many workers into one sweep dir is how it scales."""
    return "optuna" in str(OmegaConf.select(config, "hydra.sweeper._target_") or "").lower()


class SweepFolder(Callback):
    """gan.train's Hydra callback (before SweepIndex): the sweep dir's lock and its record."""

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir).resolve()
        try:
            check_output_dir(sweep_dir, KEY)  # a read-only dir: one line naming it
            if not is_shared(config):
                acquire(sweep_dir, KEY, SWEEP_LOCK)
            self._one_sweep(config, sweep_dir)
        except UsageError as err:
            release(sweep_dir, SWEEP_LOCK)
            raise exit_for("train", err, debug=False) from None

    def _one_sweep(self, config: DictConfig, sweep_dir: Path) -> None:
        mine = defining(config.hydra.overrides.task)
        before = recorded(sweep_dir)
        if before is not None and (sorted(before) != sorted(mine) or config.get("overwrite")):
            if not config.get("overwrite"):
                gone = [o for o in before if o not in mine] or ["(none)"]
                new = [o for o in mine if o not in before] or ["(none)"]
                raise UsageError(
                    f"{KEY}={sweep_dir} holds another sweep: its overrides {' '.join(gone)} "
                    f"vs this sweep's {' '.join(new)}; run the same overrides to continue it, "
                    f"choose another {KEY}=, or add overwrite=true to move it aside to "
                    f"{sweep_dir.name}.old-<n>")
            aside = move_aside(sweep_dir, keep=(SWEEP_LOCK,))
            print(f"gan.train: overwrite=true: the sweep that was in {sweep_dir} is now in "
                  f"{aside}", file=sys.stderr, flush=True)
            before = None
        if not is_shared(config):
            for job in sorted(p for p in sweep_dir.iterdir() if p.is_dir()):
                holder = held_by_other(job, LOCK)
                if holder is not None:  # e.g. a job resumed by hand as a single run
                    raise UsageError(busy_message(KEY, sweep_dir, holder, job / LOCK)
                                     + f" (its job folder {job.name} is running)")
        if before is None:
            atomic_write(sweep_dir / OVERRIDES, lambda tmp: tmp.write_text(
                "".join(f"{o}\n" for o in mine)))
        else:
            log.info("continuing the sweep in %s: finished jobs are skipped, cut ones resume",
                     sweep_dir)
            for job in sorted(p for p in sweep_dir.iterdir() if p.is_dir()):
                archive_configs(job)  # Hydra rewrites .hydra/: each job keeps its configs

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        release(Path(config.hydra.sweep.dir).resolve(), SWEEP_LOCK)
