"""The files a run and a sweep leave, and the one rule that reads how a run ended.

Every name, schema and verdict of a run's artefacts lives here; writers and readers (training,
`gan.evaluate`, the sweep index, `gan.report`) come through these functions.

- `status.json`: one JSON object, rewritten atomically. Keys: `status` (running | done |
  diverged | interrupted | failed), `g_step`, `d_step`, plus what the writers add: the budget,
  `train_s` (training wall time, evaluation excluded), `eval_s` (evaluation, grids and
  checkpoints), `cpu_s` (the process's CPU time), images seen, img/s, the reason for `diverged`.
- `metrics.json`: the final metrics with the protocol they were measured under (schema 2):
  `{"schema": 2, "metrics": {"fid": ...}, "protocol": {"dataset", "extractor", "n",
  "reference", "sampler", "seed", "primary", "primary_better"}, ...}`. Metric names are bare
  (`fid`); files written before (training: `val/fid`, no protocol) read the same. `primary`:
  the metric the data declares its runs are ranked by (`mode_kl` for Stacked MNIST) and
  `primary_better` which way (`lower`); a file without them declares FID, lower better
  (`declared_primary`).
- `curve.csv`: one row per evaluation during training: where the run stood, then `val/<metric>`.
- `FAILED.txt`: why a sweep job failed (a traceback or one line).
- A sweep folder's `index.tsv` (one row per job) and `swept_keys.txt` (the keys it varies).
"""

from __future__ import annotations

import csv
import json
import math
import os
from functools import lru_cache
from pathlib import Path

from gan.io.files import atomic_write, write_json

STATUS, METRICS, CURVE, FAILED = "status.json", "metrics.json", "curve.csv", "FAILED.txt"
INDEX, SWEPT_KEYS = "index.tsv", "swept_keys.txt"
FINAL_GRID = Path("samples") / "final.png"

STATUSES = ("running", "done", "diverged", "interrupted", "failed", "pruned")  # pruned: by a search
# How a run ended, as index.tsv and gan.report say it. `unreadable`: status.json or
# metrics.json exists but cannot be parsed; reports count it as failed, never as ok.
VERDICTS = ("ok", "diverged", "failed", "interrupted", "running", "pruned", "unreadable")
METRICS_SCHEMA = 2


class Unreadable(ValueError):
    """An artefact exists but is not what its schema says (truncated, hand-edited, ...)."""


def _load(path: Path) -> dict | None:
    """The JSON object at `path`; None when there is no file; Unreadable when it is broken."""
    try:
        value = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise Unreadable(f"{path}: {err}") from err
    if not isinstance(value, dict):
        raise Unreadable(f"{path}: holds a {type(value).__name__}, not a JSON object")
    return value


# ---- status.json ------------------------------------------------------------------------------

def read_status(run_dir: str | os.PathLike) -> dict:
    """status.json as a dict; {} when missing or broken (writers start afresh; verdicts use
    `run_verdict`, which tells a broken file apart)."""
    try:
        return _load(Path(run_dir) / STATUS) or {}
    except Unreadable:
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
    write_json(Path(run_dir) / STATUS, record)
    return record


def write_failed(run_dir: str | os.PathLike, text: str) -> Path:
    """`<run dir>/FAILED.txt`: why the job failed (a sweep goes on past it)."""
    path = Path(run_dir) / FAILED
    atomic_write(path, lambda tmp: tmp.write_text(text if text.endswith("\n") else text + "\n"))
    return path


def clear_failed(run_dir: str | os.PathLike) -> None:
    """A job that runs again has not failed yet: its old FAILED.txt goes."""
    (Path(run_dir) / FAILED).unlink(missing_ok=True)


def unreadable(run_dir: str | os.PathLike) -> list[str]:
    """The artefacts of `run_dir` that exist but cannot be read, each as `name: why`."""
    found = []
    for name, read in ((STATUS, lambda p: _load(p)), (METRICS, read_metrics_file)):
        try:
            read(Path(run_dir) / name)
        except Unreadable as err:
            found.append(f"{name}: {str(err).split(': ', 1)[-1][:80]}")
    return found


def run_verdict(run_dir: str | os.PathLike, completed: bool = True) -> str:
    """How the run in `run_dir` ended, one of VERDICTS: the one rule the sweep index and the
    report share. `completed=False`: the launcher saw the job raise."""
    run_dir = Path(run_dir)
    if not completed or (run_dir / FAILED).exists():
        return "failed"
    try:
        status = (_load(run_dir / STATUS) or {}).get("status")
        has_metrics = bool(read_metrics(run_dir))
    except Unreadable:
        return "unreadable"
    if status == "failed":
        return "failed"
    if status in ("diverged", "interrupted", "running", "pruned"):
        return status
    if status == "done" or has_metrics or (run_dir / FINAL_GRID).is_file():
        return "ok"
    return "failed"  # never finished and says nothing: killed, or crashed before status.json


# ---- metrics.json -----------------------------------------------------------------------------

def protocol(dataset: str, extractor: str | None, n: int, reference: str, sampler: str,
             seed: int, posthoc: dict | None = None) -> dict:
    """What a metric value is relative to: two values compare only under one protocol.
    `extractor`: the classifier's registered sha256; `reference`: the real split (test |
    train); `sampler`: what drew the images (ema | generator | a samples file); `posthoc`: how
    z was drawn and filtered (gan.sampling.posthoc: plain, truncation, rejection, with its
    settings and acceptance rate)."""
    return {"dataset": dataset, "extractor": extractor, "n": int(n), "reference": reference,
            "sampler": sampler, "posthoc": posthoc or {"name": "plain"}, "seed": int(seed)}


PRIMARY_DEFAULT = ("fid", "lower")  # what a metrics.json from before `primary` ranks by


def declared_primary(stamp: dict | None) -> tuple[str, str]:
    """(metric, "lower" | "higher"): what a protocol stamp says its run is ranked by; FID,
    lower better, for a stamp from before the key (or none)."""
    stamp = stamp or {}
    return (str(stamp.get("primary") or PRIMARY_DEFAULT[0]),
            str(stamp.get("primary_better") or PRIMARY_DEFAULT[1]))


def write_metrics(path: str | os.PathLike, metrics: dict, stamp: dict, **context) -> dict:
    """Write metrics.json (atomically) at `path`: bare metric names, the protocol `stamp`
    (from `protocol`), and `context` (g_step, ckpt_path, ...). Returns what was written."""
    report = {"schema": METRICS_SCHEMA, **context, "protocol": stamp,
              "metrics": {k.removeprefix("val/"): float(v) for k, v in metrics.items()}}
    write_json(path, report)
    return report


def read_protocol(run_dir: str | os.PathLike) -> dict:
    """The protocol stamp of `run_dir`'s metrics.json ({} when there is none, it predates the
    stamp, or the file is unreadable: `run_verdict` says so)."""
    try:
        report = _load(Path(run_dir) / METRICS) or {}
    except Unreadable:
        return {}
    stamp = report.get("protocol")
    return stamp if isinstance(stamp, dict) else {}


def read_metrics_file(path: str | os.PathLike) -> dict[str, float]:
    """The metrics of one metrics.json, bare names; {} when there is none. Reads both schemas
    (training wrote `val/fid` before schema 2)."""
    report = _load(Path(path))
    if report is None:
        return {}
    values = report.get("metrics")
    if not isinstance(values, dict):
        raise Unreadable(f"{path}: no `metrics` object")
    try:
        return {k.removeprefix("val/"): float(v) for k, v in values.items()}
    except (TypeError, ValueError) as err:
        raise Unreadable(f"{path}: a metric is not a number ({err})") from err


def read_metrics(run_dir: str | os.PathLike) -> dict[str, float]:
    """The final metrics of the run in `run_dir`, bare names (`fid`)."""
    return read_metrics_file(Path(run_dir) / METRICS)


def metric_value(metrics: dict[str, float], name: str) -> float | None:
    """`name` as a sweeper asks for it (`val/fid` or `fid`) from `read_metrics`' dict."""
    value = metrics.get(name.removeprefix("val/"))
    return None if value is None else float(value)


# ---- curve.csv --------------------------------------------------------------------------------

def append_curve_row(run_dir: str | os.PathLike, row: dict) -> None:
    """One row of `<run dir>/curve.csv`; the first row's keys are the header for good."""
    path = Path(run_dir) / CURVE
    fields = None
    if path.is_file() and path.stat().st_size:
        with path.open(newline="") as f:
            fields = next(csv.reader(f))
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields or list(row), extrasaction="ignore")
        if fields is None:
            writer.writeheader()
        writer.writerow(row)


def read_curve(run_dir: str | os.PathLike) -> list[dict]:
    """curve.csv rows as floats (an empty cell is NaN); [] when there is none."""
    path = Path(run_dir) / CURVE
    if not path.is_file():
        return []
    rows = []
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            rows.append({k: _float(v) for k, v in row.items()})
    return rows


def _float(text) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


# ---- sweep folders ----------------------------------------------------------------------------

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
