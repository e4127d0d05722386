"""Sweeps: `index.tsv` (one row per job), readable job folder names, and a non-zero exit when a
job failed.

`index.tsv` columns: job, status (gan.io.artefacts.run_verdict: ok | diverged | interrupted |
failed | pruned | unreadable), metric (what the job returned), peak_rss_mb (the job's peak resident memory:
in-process launchers run every job in one process, so growth shows here), dir, overrides.
"""

from __future__ import annotations

import csv
import gc
import logging
import sys
from pathlib import Path

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from gan.io.artefacts import INDEX, SWEPT_KEYS, run_verdict, update_status

log = logging.getLogger(__name__)


COLUMNS = ["job", "status", "metric", "peak_rss_mb", "dir", "overrides"]
BAD = ("failed", "interrupted", "unreadable")  # statuses that make `-m` exit non-zero


def find_swept_keys(master: DictConfig) -> list[str]:
    """Keys the sweep varies, in the order typed: sweep overrides (`a=1,2`, `range(...)`,
    `choice(...)`) and an Optuna search space (`hydra.sweeper.params`)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    keys: list[str] = []
    for override in OverridesParser.create().parse_overrides(list(master.hydra.overrides.task)):
        if override.is_sweep_override():
            keys.append(override.key_or_group)
    params = OmegaConf.select(master, "hydra.sweeper.params") or {}
    return keys + [k for k in params if k not in keys]




def reset_peak_rss() -> None:
    """Linux: restart this process's peak-RSS counter (VmHWM), so each job gets its own."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def peak_rss_mb() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def read_index(sweep_dir: str | Path) -> list[dict]:
    """The rows of `index.tsv`, the latest one per job folder: a sweep run again into the same
    dir (a study with skip_done) appends rows, and a job that failed before and is fine now
    counts as fine."""
    path = Path(sweep_dir) / INDEX
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        latest = {row["dir"]: row for row in csv.DictReader(f, delimiter="\t")}
    return list(latest.values())


class SweepIndex(Callback):
    """Hydra callback: every job's row in `<sweep dir>/index.tsv`; at the end of the sweep, the
    failed jobs are printed and the command exits 1 (after every job ran)."""

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        # Before the sweeper starts: an Optuna study's journal file lives in the sweep dir.
        sweep_dir = Path(config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        (sweep_dir / SWEPT_KEYS).write_text("\n".join(find_swept_keys(config)) + "\n")

    def on_job_start(self, config: DictConfig, **kwargs) -> None:
        if config.hydra.mode.name == "MULTIRUN":
            gc.collect()  # the previous job's cycles (trainer <-> callbacks <-> module) go now
            reset_peak_rss()

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs) -> None:
        if config.hydra.mode.name != "MULTIRUN":
            return
        index = Path(config.hydra.sweep.dir) / INDEX
        ok = job_return.status == JobStatus.COMPLETED
        value = job_return.return_value if ok else None
        run_dir = Path(config.hydra.runtime.output_dir)
        rss = peak_rss_mb()
        if rss is not None and run_dir.is_dir():
            update_status(run_dir, peak_rss_mb=rss)
        row = [config.hydra.job.num, run_verdict(run_dir, ok), value, rss, run_dir.name,
               " ".join(job_return.overrides or [])]
        # One short line in append mode: parallel jobs (joblib, submitit) do not interleave.
        with index.open("a", newline="") as f:
            if f.tell() == 0:
                f.write("\t".join(COLUMNS) + "\n")
            f.write("\t".join("" if v is None else str(v) for v in row) + "\n")

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        rows = read_index(config.hydra.sweep.dir)
        diverged = [r for r in rows if r["status"] == "diverged"]
        bad = [r for r in rows if r["status"] in BAD]
        for r in diverged:
            log.warning("job %s diverged: %s", r["job"], r["dir"])
        if not bad:
            return
        lines = [f"  job {r['job']} {r['status']}: {Path(config.hydra.sweep.dir) / r['dir']}"
                 for r in bad]
        print(f"{len(bad)} of {len(rows)} sweep jobs did not finish (FAILED.txt in each):\n"
              + "\n".join(lines), file=sys.stderr)
        sys.exit(1)
