"""What one Optuna trial is in this project: its jobs (one per seed), and its outcome from
what those jobs left (their return value and their run folder's status.json).

- A trial's value is a statistic (`hparams_search.statistic`: mean, median, max or min) of its
  seeds' final metric; `hparams_search.seeds=k` trains seeds seed, seed+1, ..., seed+k-1.
- Any seed pruned: the trial is PRUNED (Optuna keeps its last reported value).
- Any seed failed, diverged without a finite metric, or returned nothing: the trial is FAIL.
  A config that fails on one seed in k is not a config to recommend; TPE then samples away
  from it, and the search goes on.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from optuna.trial import TrialState

from gan.io.artefacts import read_status

STATISTICS = {"mean": statistics.fmean, "median": statistics.median, "max": max, "min": min}


def job_overrides(params: dict[str, Any], ids: dict[str, Any], seeds: int,
                  first_seed: int) -> list[list[str]]:
    """The overrides of a trial's jobs: its knobs, then where it reports to (`ids` go to
    `hparams_search.*`), one job per seed."""
    knobs = [f"{k}={v}" for k, v in params.items()]
    tags = [f"++hparams_search.{k}={v}" for k, v in ids.items()]
    if seeds == 1:
        return [knobs + tags]
    return [knobs + tags + [f"seed={first_seed + i}", f"++hparams_search.first_seed={first_seed}"]
            for i in range(seeds)]


def seed_result(job_return) -> tuple[str, float | None]:
    """('ok' | 'pruned' | 'failed', value) of one job: its status.json says how the run ended,
    its return value is the metric."""
    hydra_cfg = getattr(job_return, "hydra_cfg", None)
    out = hydra_cfg.hydra.runtime.output_dir if hydra_cfg is not None else None
    status = read_status(Path(out)).get("status") if out else None
    if status == "pruned":
        return "pruned", None
    try:
        value = float(job_return.return_value)  # raises the job's own error when it failed
    except Exception:  # noqa: BLE001 (a job's failure is the trial's outcome, not ours)
        return "failed", None
    if status == "failed" or not math.isfinite(value):
        return "failed", None
    return "ok", value


def trial_outcome(results: Sequence[tuple[str, float | None]],
                  statistic: str) -> tuple[TrialState, float | None, str]:
    """(state, value, what happened) of a trial from its seeds' results."""
    kinds = [kind for kind, _ in results]
    if "pruned" in kinds:
        return TrialState.PRUNED, None, f"pruned ({kinds.count('pruned')} of {len(kinds)} seeds)"
    if "failed" in kinds:
        return TrialState.FAIL, None, f"failed ({kinds.count('failed')} of {len(kinds)} seeds)"
    values = [v for _, v in results]
    value = STATISTICS[statistic](values)
    return TrialState.COMPLETE, value, f"{statistic} of {len(values)} seed(s): {value:.4g}"


def check_statistic(statistic: str) -> str:
    if statistic not in STATISTICS:
        raise ValueError(f"hparams_search.statistic must be one of {', '.join(STATISTICS)}, "
                         f"got {statistic!r}")
    return statistic
