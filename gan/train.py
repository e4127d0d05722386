"""Train a GAN: `python -m gan.train [group=option ...] [key=value ...]`.

Compose the config, build every object from its `_target_`, fit, return the configured metric
(so a sweeper can optimise it). Everything a run writes goes to its Hydra run dir.
"""

from __future__ import annotations

import logging
import math
import sys
import traceback
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from gan.cli.runner import entry_point
from gan.core.guard import Diverged
from gan.io.artefacts import clear_failed, read_status, update_status, write_failed
from gan.io.usage import UsageError
from gan.runs.folder import command, holds_run
from gan.runs.lock import RunFolderBusy, acquire, ddp_child, release, restore_configs
from gan.runs.resume import Interrupted, SetupInterrupted, resume_command, stop_on_signals
from gan.runs.wiring import finished, fit, objective
from gan.sweeps.pruning import Pruned

log = logging.getLogger(__name__)


def train(cfg: DictConfig) -> float | None:
    stop_on_signals()  # from here a signal stops the run within seconds, whatever it is doing
    out = Path(HydraConfig.get().runtime.output_dir)
    # A single run's lock was taken by RunFolder (conf/hydra), before Hydra wrote there; a
    # sweep job takes its own folder's here (a second sweep into the same folder is refused).
    if ddp_child():  # a DDP rank > 0: rank 0 holds the folder
        return run(cfg, out)
    try:
        acquire(out)
    except RunFolderBusy as err:
        log.error("job %s: %s", HydraConfig.get().job.num, err)
        return math.nan
    try:
        return run(cfg, out)
    finally:
        release(out)


def run(cfg: DictConfig, out: Path) -> float | None:
    multirun = HydraConfig.get().mode == RunMode.MULTIRUN
    # A rerun sweep (the same overrides: gan/sweeps/continuation.py), a study, or skip_done:
    # finished jobs stay, cut ones go on. A job folder's name is unique to its overrides, so
    # what it holds is this job's own run.
    if cfg.get("skip_done") or (multirun and cfg.ckpt_path is None and holds_run(out)):
        done, value = finished(out, cfg.get("metric"))
        if done:
            log.info("skip_done: %s already finished (metric=%s); not training again", out, value)
            return value
        last = out / "checkpoints" / "last.ckpt"
        if cfg.ckpt_path is None and last.is_file():
            log.info("skip_done: resuming the cut run in %s from %s", out, last)
            cfg.ckpt_path = str(last)
    clear_failed(out)
    try:
        trainer, _ = fit(cfg)
        return objective(trainer, cfg.get("metric"))
    except Interrupted as stop:
        print(f"{stop.signal_name}: training stopped; checkpoint in "
              f"{stop.ckpt_path}. Resume with: {resume_command(stop.ckpt_path)}",
              file=sys.stderr, flush=True)
        raise
    except SetupInterrupted as stop:  # nothing trained; every file written so far is whole
        update_status(out, status="interrupted", signal=stop.signal_name,
                      reason="stopped before the first batch", **(
                          {"ckpt_path": str(cfg.ckpt_path)} if cfg.ckpt_path else {}))
        again = command("train", list(HydraConfig.get().overrides.task),
                        **({"ckpt_path": cfg.ckpt_path} if cfg.ckpt_path else {}),
                        hydra__run__dir=out)
        print(f"{stop.signal_name}: stopped before the first batch; nothing was trained. "
              f"Start it again with: {again}", file=sys.stderr, flush=True)
        raise
    except (UsageError, Diverged) as err:
        if isinstance(err, Diverged):  # the last good checkpoint stays; say how it ended
            update_status(out, status="diverged", reason=str(err))
        elif not restore_configs(out):  # refused before training: the run dir says why; a
            update_status(out, status="failed", error=str(err)[:300])  # refused resume leaves
            # the folder's config and status as its last run left them
        if HydraConfig.get().mode == RunMode.MULTIRUN:  # the sweep goes on
            write_failed(out, str(err))
            log.error("job %s: %s", HydraConfig.get().job.num, err)
            return math.nan
        raise  # run_cli: one line, exit 2 (bad input) or 1 (diverged), no traceback
    except Pruned as stop:  # the search's pruner stopped a hopeless trial: not a failure
        update_status(out, status="pruned", reason=str(stop))
        log.info("job %s: %s", HydraConfig.get().job.num, stop)
        return math.nan
    except Exception as err:
        first = (str(err).strip().splitlines() or [""])[0]
        if read_status(out).get("status") != "diverged":  # the guard's finding stays
            update_status(out, status="failed", error=f"{type(err).__name__}: {first}"[:300])
        if HydraConfig.get().mode != RunMode.MULTIRUN:
            raise
        # One diverged job must not end the sweep: record it in its run dir and go on.
        failed = write_failed(out, traceback.format_exc())
        log.exception("job %s failed; see %s", HydraConfig.get().job.num, failed)
        return math.nan


main = entry_point("train", train, "train")


if __name__ == "__main__":
    main()
