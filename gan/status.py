"""`<run dir>/status.json`: what a run is doing, or how it ended, readable while it runs.

One JSON object, rewritten atomically. Keys: `status` (running | done | diverged | interrupted |
failed), `g_step`, `d_step`, plus whatever the writers add (budget, wall time, images seen,
img/s, the reason for `diverged` ...). Sweep indexes and `gan.report` read it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from gan.files import write_json

STATUSES = ("running", "done", "diverged", "interrupted", "failed")


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
