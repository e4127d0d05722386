"""A run's group in its sweep, over seeds: what a model card says about how typical the
exported seed is (gan.report's grouping: the config minus `seed` and bookkeeping)."""

from __future__ import annotations

from pathlib import Path

from gan.io.artefacts import INDEX
from gan.sweeps.report import find_runs, group_runs, load_run


def group_spread(run_dir: Path | None, metric: str = "fid") -> dict | None:
    """{sweep, variant, seeds, mean, min, max} of `metric` over the seeds of `run_dir`'s
    group, where `run_dir` is a job of a sweep (its parent holds index.tsv) and a seed scored;
    else None."""
    if run_dir is None or not (run_dir.parent / INDEX).is_file():
        return None
    runs = [load_run(path) for path in find_runs([run_dir.parent])]
    groups, _ = group_runs(runs)
    mine = next((g for g in groups if any(r.dir.resolve() == run_dir.resolve() for r in g.runs)),
                None)
    values = {} if mine is None else {r.seed: r.metrics[metric] for r in mine.scored()
                                      if metric in r.metrics}
    if not values:
        return None
    return {"sweep": run_dir.parent.name, "variant": mine.label, "seeds": list(values),
            "mean": sum(values.values()) / len(values), "min": min(values.values()),
            "max": max(values.values())}
