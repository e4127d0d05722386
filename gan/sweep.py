"""`index.tsv` in a multirun folder: one row per job with its overrides, status and metric."""

from __future__ import annotations

import csv
from pathlib import Path

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig


class SweepIndex(Callback):
    """Hydra callback: job folder names are cut short (see gan.config.short_dirname), so the
    full overrides of every job are listed here, next to what it returned."""

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs) -> None:
        if config.hydra.mode.name != "MULTIRUN":
            return
        index = Path(config.hydra.sweep.dir) / "index.tsv"
        new = not index.exists()
        ok = job_return.status == JobStatus.COMPLETED
        value = job_return.return_value if ok else None
        run_dir = Path(config.hydra.runtime.output_dir)
        with index.open("a", newline="") as f:
            writer = csv.writer(f, delimiter="\t")
            if new:
                writer.writerow(["job", "status", "metric", "dir", "overrides"])
            status = "failed" if (run_dir / "FAILED.txt").exists() or not ok else "ok"
            writer.writerow([config.hydra.job.num, status, value, run_dir.name,
                             " ".join(job_return.overrides or [])])
