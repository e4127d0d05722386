"""What one job of a parallel sweep may use: CPU threads and one accelerator of its own.

`hydra/launcher=joblib` runs `n_jobs` training processes side by side. Each would take every
core for its OpenMP threads by default, and together they thrash (measured: two such jobs on 2
cores went from ~1300 to 84 img/s each). So a job takes cores / n_jobs threads. On a machine
with several GPUs each sweep job claims a free one through a lock file in the sweep dir (one
folder per host), held while it trains, so jobs never share a GPU whatever order they finish
in, and whichever process launched them: a joblib launcher, or several search workers
(`gan.train -m hparams_search=...` started N times on one sweep dir).
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
from contextlib import contextmanager
from pathlib import Path

import torch
from omegaconf import DictConfig

log = logging.getLogger(__name__)


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def parallel_jobs(hydra_cfg: DictConfig | None) -> int:
    """Jobs the launcher runs at once: joblib's n_jobs (its -1 = every core), else 1 (the basic
    launcher runs jobs one by one; submitit gives each job its own cpus_per_task)."""
    launcher = (hydra_cfg or {}).get("launcher") or {}
    if "joblib" not in str(launcher.get("_target_", "")).lower():
        return 1
    n_jobs = launcher.get("n_jobs") or -1
    return n_jobs if n_jobs > 0 else max(1, cpu_count() + 1 + n_jobs)


def threads_per_job(n_jobs: int, cores: int | None = None) -> int:
    return max(1, (cores or cpu_count()) // max(1, n_jobs))


@contextmanager
def claim_device(lock_dir: Path, n_devices: int):
    """Yields the index of a device no other job of the sweep holds, waiting for one to be
    freed when all are taken; the claim ends with the block (or the process)."""
    lock_dir.mkdir(parents=True, exist_ok=True)
    handles = [open(lock_dir / f"device{i}.lock", "a+") for i in range(n_devices)]  # noqa: SIM115
    held = None
    try:
        for i, handle in enumerate(handles):
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                held = i
                break
            except BlockingIOError:
                continue
        if held is None:  # more parallel jobs than devices: wait for the first device
            fcntl.flock(handles[0], fcntl.LOCK_EX)
            held = 0
        yield held
    finally:
        for handle in handles:
            handle.close()  # closing drops the lock


@contextmanager
def job_resources(cfg: DictConfig, hydra_cfg: DictConfig | None, sweep_dir: Path | None):
    """Set this job's threads; yield the Trainer arguments that give it its own device."""
    n_jobs = parallel_jobs(hydra_cfg)
    threads = cfg.get("threads") or (threads_per_job(n_jobs) if n_jobs > 1 else None)
    if threads:
        torch.set_num_threads(int(threads))
        log.info("%d thread(s) for this job (%d parallel job(s) on %d cores)", threads, n_jobs,
                 cpu_count())
    accelerator = str(cfg.trainer.get("accelerator", "auto"))
    n_devices = torch.cuda.device_count() if accelerator in ("auto", "gpu", "cuda") else 0
    if n_devices > 1 and cfg.trainer.get("devices") == 1 and sweep_dir:
        with claim_device(Path(sweep_dir) / ".devices" / socket.gethostname(), n_devices) as index:
            log.info("this job trains on cuda:%d", index)
            yield {"devices": [index]}
    else:
        yield {}
