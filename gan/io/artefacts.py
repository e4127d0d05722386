"""`<run dir>/status.json`: what a run is doing, or how it ended, readable while it runs.

One JSON object, rewritten atomically. Keys: `status` (running | done | diverged | interrupted |
failed), `g_step`, `d_step`, plus whatever the writers add (budget, wall time, images seen,
img/s, the reason for `diverged` ...). Sweep indexes and `gan.report` read it.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path

from gan.io.files import write_json

STATUSES = ("running", "done", "diverged", "interrupted", "failed", "pruned")  # pruned: by a search


def read_status(run_dir: str | os.PathLike) -> dict:
    path = Path(run_dir) / "status.json"
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def update_status(run_dir: str | os.PathLike, **fields) -> dict:
    """Merge `fields` into status.json (creating it) and return the new whole. `done` does not
    replace `diverged`: the metrics may flag a run before its end is recorded."""
    if "status" in fields and fields["status"] not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, got {fields['status']!r}")
    record = read_status(run_dir)
    if record.get("status") == "diverged" and fields.get("status") == "done":
        fields = {k: v for k, v in fields.items() if k != "status"}  # a flagged run stays flagged
    record = {**record, **fields}
    write_json(Path(run_dir) / "status.json", record)
    return record


SWEPT_KEYS = "swept_keys.txt"  # a sweep folder's swept keys, one per line (gan.sweeps.index)


@lru_cache(maxsize=8)
def _read_keys(path: str, mtime: float) -> tuple[str, ...]:
    return tuple(Path(path).read_text().split())



def swept_keys(sweep_dir: str | Path) -> tuple[str, ...]:
    """The keys SweepIndex.on_multirun_start wrote to `<sweep dir>/swept_keys.txt` (jobs may run
    in other processes: joblib, submitit)."""
    path = Path(sweep_dir) / SWEPT_KEYS
    if not path.is_file():
        return ()
    return _read_keys(str(path), path.stat().st_mtime)
