"""Compare the runs of sweeps: `python -m gan.report DIR [DIR ...] [report.ignore=[k,...]]
[report.baseline=key=value[,key=value]]`.

DIR is a sweep folder (basic, joblib, submitit or Optuna), or run dirs; every run dir below it
(a folder with `.hydra/config.yaml`) is read. Runs are grouped by their config minus `seed`,
bookkeeping keys (`BOOKKEEPING`) and the `report.ignore` keys: the seeds of one variant. Groups
are named by Hydra choices and values (`loss=hinge`), never by class paths. `report/` inside
the first DIR gets

- `report.md`, `report.csv`: per group, against the baseline (`report.baseline=`) or else the
  top-ranked group: the difference of mean FIDs with its 95 % interval (Welch, or paired when
  the seeds match and the data and nets agree), the p-value adjusted by Holm, the verdict at
  alpha 0.05, the success rate, every seed's FID and the median; every final metric with its
  interval (Student-t; bounded metrics: the seeds' range at n <= 3, else a bootstrap
  percentile interval); what the design can detect; the time spent (training, evaluation,
  CPU, each said);
- `curves.png`: FID against training time and against images seen, mean per group with its
  band;
- `mosaic.png`: the final grid of each group, labelled with its differing keys.

Failures count: a failed, diverged or unreadable run is the worst outcome, its FID set to the
worst of the guard's ceiling (`guard.max_fid`) and every FID measured, so a variant that
diverges in any seed ranks below one that never does. Groups rank by success rate, then by
their median FID.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import OmegaConf

from gan.io.artefacts import (
    Unreadable,
    read_curve,
    read_metrics,
    read_status,
    run_verdict,
    unreadable,
)
from gan.io.legacy import current_target
from gan.sweeps import stats
from gan.sweeps.figures import mosaic_size, plot_curves, plot_mosaic
from gan.sweeps.stats import Comparison, t_interval

__all__ = ["make_report", "mosaic_size", "t_interval", "Report", "Group", "Run"]

# Final metrics (metrics.json), in table order, with their column titles.
METRICS = {"fid": "FID", "kid": "KID", "precision": "precision", "recall": "recall",
           "coverage": "coverage", "classes_covered": "classes",
           "min_class_share": "rarest class", "label_accuracy": "label acc",
           "label_purity": "label purity"}
PRIMARY = "fid"  # what ranks and what the verdicts test; lower is better
# Metrics bounded to a range (classes_covered: 0 .. the dataset's classes): their intervals
# must stay inside it.
BOUNDED = {"precision": (0.0, 1.0), "recall": (0.0, 1.0), "coverage": (0.0, 1.0),
           "min_class_share": (0.0, 1.0), "label_accuracy": (0.0, 1.0),
           "label_purity": (0.0, 1.0), "classes_covered": (0.0, math.inf)}

# What status.json says a run spent, with column titles that say which clock.
SPENT = {"train_s": "train s (training only)", "eval_s": "eval s (metrics, grids, ckpts)",
         "wall_s": "wall s (all)", "cpu_s": "CPU s (process)",
         "img_per_s": "img/s (training)", "g_step": "G steps", "images_seen": "images"}

FAILED = ("failed", "diverged", "unreadable")    # the worst outcome
PENDING = ("running", "interrupted")             # no outcome yet: counted, not scored
STATUS_COLUMNS = ("ok", "diverged", "failed")    # unreadable counts as failed

DEFAULT_IGNORE = ("seed",)
# Keys that say how a run was run, not what was trained: they never split groups (a resumed
# run is one more seed of its variant, not a variant of its own).
BOOKKEEPING = ("ckpt_path", "skip_done", "overwrite", "threads", "save_every_n_batches",
               "init_from_log", "trainer.enable_progress_bar", "trainer.default_root_dir", "hydra",
               "hparams_search", "logger")


@dataclass
class Run:
    dir: Path
    config: dict          # flat `a.b.c` -> value, interpolations resolved where they can be
    seed: object
    status: str           # a verdict of gan.io.artefacts.run_verdict
    metrics: dict         # final metrics, bare names
    record: dict          # status.json
    curve: list = field(default_factory=list)  # curve.csv rows, floats
    derived: set = field(default_factory=set)  # keys set by an interpolation (`${..lr_g}`)
    problem: str = ""     # why an "unreadable" run could not be read (a corrupt file)


def find_runs(dirs: list[Path]) -> list[Path]:
    found: set[Path] = set()
    for d in dirs:
        if not d.is_dir():
            raise FileNotFoundError(f"{d} is not a folder: give sweep folders or run dirs")
        found.update(p.parent.parent for p in d.rglob(".hydra/config.yaml")
                     if "report" not in p.parent.parent.relative_to(d).parts)
    return sorted(found, key=_natural)


def _natural(path: Path) -> tuple:
    """Job folders in job order: `2_...` before `10_...`."""
    head = path.name.split("_", 1)[0]
    return (str(path.parent), int(head) if head.isdigit() else math.inf, path.name)


def flatten(cfg, prefix: str = "", derived: set | None = None) -> dict:
    """Leaves of a config as `a.b.c` -> value. Interpolations are resolved where they can be
    outside the run (`${..lr_g}`), those of `${seed}` are dropped (they follow the seed), and
    those Hydra fills in at run time (`${hydra:...}`) stay as written. A `_target_` becomes
    `<node>.class`, today's class name: groups are named by choices and values, and a run
    from before the class moved groups with one from after."""
    out = {}
    raw = OmegaConf.to_container(cfg, resolve=False)

    def walk(node, path):
        if isinstance(node, dict) and node:
            for k, v in node.items():
                walk(v, f"{path}.{k}" if path else str(k))
            return
        if isinstance(node, str) and "${" in node:
            if "${seed}" in node:
                return
            if derived is not None:
                derived.add(path)
            if "${hydra:" not in node:
                try:
                    node = OmegaConf.select(cfg, path, throw_on_resolution_failure=True)
                    node = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(
                        node) else node
                except Exception:  # noqa: BLE001 (an unresolvable interpolation stays as text)
                    pass
        if path == "_target_" or path.endswith("._target_"):
            path = path.removesuffix("_target_") + "class"
            node = current_target(node).rsplit(".", 1)[-1] if isinstance(node, str) else node
        out[path] = json.dumps(node) if isinstance(node, (list, dict)) else node

    walk(raw, prefix)
    return out


def load_run(run_dir: Path) -> Run:
    cfg = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    derived: set = set()
    flat = flatten(cfg, derived=derived)
    hydra_yaml = run_dir / ".hydra" / "hydra.yaml"
    if hydra_yaml.is_file():  # group choices (`loss: hinge`) read better than their class
        choices = OmegaConf.select(OmegaConf.load(hydra_yaml), "hydra.runtime.choices") or {}
        flat.update({k: v for k, v in choices.items() if not k.startswith("hydra")
                     and v is not None})
    try:
        metrics = read_metrics(run_dir)
    except Unreadable:
        metrics = {}  # run_verdict says `unreadable`
    return Run(run_dir, flat, cfg.get("seed"), run_verdict(run_dir), metrics,
               read_status(run_dir), read_curve(run_dir), derived)


@dataclass
class Summary:
    """One metric over a group's seeds: mean, median, an interval (`how`: Student-t, min–max
    or bootstrap) and the values."""
    mean: float = math.nan
    median: float = math.nan
    low: float = math.nan
    high: float = math.nan
    how: str = ""
    values: list = field(default_factory=list)


def summary(values: list[float], bounds: tuple[float, float] | None = None) -> Summary:
    xs = stats.finite(values)
    if not xs:
        return Summary()
    mean, median = sum(xs) / len(xs), statistics.median(xs)
    if bounds is not None:
        low, high = stats.bounded_interval(xs, *bounds)
        how = "min–max" if len(xs) <= 3 else "bootstrap"
    else:
        _, half = t_interval(xs)
        low, high, how = mean - half, mean + half, "t"
    return Summary(mean, median, low, high, how, xs)


@dataclass
class Group:
    runs: list[Run]
    key: tuple
    id: str = ""
    label: str = ""
    chosen: list = field(default_factory=list)     # the keys labels may name
    stats: dict = field(default_factory=dict)      # metric -> Summary (seeds that scored)
    outcome: Summary = field(default_factory=Summary)  # PRIMARY, a failure at the worst value
    seeds: dict = field(default_factory=dict)      # seed -> PRIMARY outcome
    spent: dict = field(default_factory=dict)      # train_s, eval_s, ... -> mean
    comparison: Comparison | None = None           # vs the reference; None for the reference
    verdict: str = ""

    @property
    def config(self) -> dict:
        return self.runs[0].config

    @property
    def headline(self) -> str:
        return f"FID median {fmt(self.outcome.median)}"

    def counts(self) -> dict:
        out = dict.fromkeys(STATUS_COLUMNS, 0)
        for run in self.runs:
            if run.status == "pruned":  # a search's pruner stopped it: not a failure
                out["pruned"] = out.get("pruned", 0) + 1
                continue
            if run.status in PENDING:  # not finished: no outcome yet
                continue
            out[run.status if run.status in ("ok", "diverged") else "failed"] += 1
        return out

    def success(self) -> str:
        return f"{sum(r.status == 'ok' for r in self.runs)}/{len(self.runs)}"

    def scored(self) -> list[Run]:
        return [r for r in self.runs if r.metrics and r.status in ("ok", "diverged")]

    def budget(self) -> str:
        budgets = {json.dumps(r.record.get("budget") or {
            "kind": r.config.get("budget.kind", "epochs"),
            "value": r.config.get("budget.value", r.config.get("trainer.max_epochs"))},
            sort_keys=True) for r in self.runs}
        return " / ".join(sorted(budgets))


def ignored(key: str, ignore: tuple[str, ...]) -> bool:
    return any(key == i or key.startswith(i + ".") for i in ignore)


def group_runs(runs: list[Run], ignore: tuple[str, ...] = ()) -> tuple[list[Group], list[str]]:
    """Groups of runs whose configs agree on every key but `seed`, bookkeeping and `ignore`,
    and the keys whose values differ between groups."""
    ignore = (*DEFAULT_IGNORE, *BOOKKEEPING, *ignore)
    groups: dict[tuple, Group] = {}
    for run in runs:
        key = tuple(sorted((k, repr(v)) for k, v in run.config.items() if not ignored(k, ignore)))
        groups.setdefault(key, Group([], key)).runs.append(run)
    keys = sorted({k for g in groups for k, _ in g})
    differ = [k for k in keys if len({dict(g).get(k, "<unset>") for g in groups}) > 1]
    out = list(groups.values())
    derived = set().union(*(r.derived for r in runs))
    # Labels name what was chosen: not the keys that follow another (`optim.generator.lr:
    # ${..lr_g}`), nor the class an option brings (`loss.class` when `loss` differs).
    differ = [k for k in differ if not (k.endswith(".class") and k.removesuffix(".class")
                                        in differ)]
    chosen = [k for k in differ if k not in derived]
    for i, g in enumerate(out, 1):
        g.id = f"g{i}"
        g.chosen = chosen
        g.label = ", ".join(f"{k}={fmt(g.config.get(k, '<unset>'))}" for k in chosen) or "all"
    return out, differ


def relabel(groups: list[Group], baseline: Group) -> None:
    """Against a baseline, a group is labelled by the chosen keys where it differs from the
    baseline alone (a study's `wider` row names the widths, not the twenty keys every variant
    shares), and a group option that differs (`model=mlp`) stands for the keys under it. The
    baseline keeps its full label, the reference the others are read against."""
    for g in groups:
        if g is baseline:
            continue
        keys = [k for k in g.chosen if fmt(g.config.get(k, "<unset>"))
                != fmt(baseline.config.get(k, "<unset>"))]
        # `model=mlp` says it: not the nets' keys that come with the other option
        keys = [k for k in keys if not any(k.startswith(o + ".") for o in keys)]
        g.label = ", ".join(f"{k}={fmt(g.config.get(k, '<unset>'))}" for k in keys) or \
            "same config as the baseline"


def worst_value(runs: list[Run]) -> float:
    """The FID a failed run counts as: the worst of the guard's ceiling and every FID
    measured (NaN when nothing was measured: then there is nothing to rank on)."""
    measured = [r.metrics[PRIMARY] for r in runs if math.isfinite(r.metrics.get(PRIMARY,
                                                                               math.nan))]
    ceilings = [float(r.config["guard.max_fid"]) for r in runs
                if isinstance(r.config.get("guard.max_fid"), (int, float))]
    return max(measured + ceilings) if measured else math.nan


def summarise(group: Group, worst: float) -> None:
    scored = group.scored()
    for name in METRICS:
        group.stats[name] = summary([r.metrics.get(name, math.nan) for r in scored],
                                    BOUNDED.get(name))
    group.seeds = {}
    for run in group.runs:
        if run.status in FAILED:
            group.seeds[run.seed] = worst
        elif run.status == "ok" and PRIMARY in run.metrics:
            group.seeds[run.seed] = run.metrics[PRIMARY]
    group.outcome = summary(list(group.seeds.values()))
    for name in SPENT:
        values = [r.record[name] for r in group.runs if isinstance(r.record.get(name),
                                                                   (int, float))]
        group.spent[name] = sum(values) / len(values) if values else math.nan


def rank(groups: list[Group]) -> list[Group]:
    """By success rate (ok runs of all), then by median FID with a failure counting as the worst
    (then by mean; groups without any FID last). A variant that diverges in some seeds never
    ranks above one that never does, however good its survivors: a recipe is worth its
    failures. Within one success rate the median stays honest with failures in it."""
    def key(g):
        finished = [r for r in g.runs if r.status not in PENDING]
        rate = sum(r.status == "ok" for r in finished) / len(finished) if finished else 0.0
        med = g.outcome.median
        return (0, -rate, med, g.outcome.mean) if math.isfinite(med) else (1, 0.0, 0.0, 0.0)

    return sorted(groups, key=key)


def pairable(a: Group, b: Group) -> bool:
    """A paired test is valid when the seeds match one to one and the data and nets agree:
    the same seed then gives the same initial weights and the same data order."""
    if set(a.seeds) != set(b.seeds) or len(a.seeds) < 2 or len(a.seeds) != len(
            [r for r in a.runs if r.seed in a.seeds]):
        return False
    keys = {k for k in (*a.config, *b.config)
            if k in ("data", "model") or k.startswith(("data.", "model."))}
    return all(fmt(a.config.get(k)) == fmt(b.config.get(k)) for k in keys)


def compare(groups: list[Group], reference: Group, vs: str) -> None:
    """Each group against `reference`: Welch (or paired) on the FID outcomes, Holm over all
    comparisons, the verdict at alpha 0.05. `vs`: `baseline` or `best`."""
    others = [g for g in groups if g is not reference]
    for g in others:
        if pairable(g, reference):
            seeds = sorted(g.seeds, key=str)
            g.comparison = stats.paired([g.seeds[s] for s in seeds],
                                        [reference.seeds[s] for s in seeds])
        else:
            g.comparison = stats.welch(g.outcome.values, reference.outcome.values)
    for g, p in zip(others, stats.holm([g.comparison.p for g in others])):
        g.comparison.p_adjusted = p
    reference.verdict = vs
    for g in others:
        c = g.comparison
        if not math.isfinite(c.p_adjusted):
            g.verdict = "can't tell (fewer than 2 seeds)"
        elif c.p_adjusted >= stats.ALPHA:
            g.verdict = "can't tell" if vs == "baseline" else "not distinguishable from the best"
        elif c.diff < 0:
            g.verdict = "better" if vs == "baseline" else "better than the top-ranked"
        else:
            g.verdict = "worse" if vs == "baseline" else "worse than the best"


def power_line(groups: list[Group]) -> str:
    """What the design can detect: the smallest FID difference found at alpha 0.05 (two-sided,
    before Holm) with power 0.8, at the design's seeds per group and the pooled spread of the
    runs that finished, and the seeds needed to detect half of it."""
    sizes = sorted(len(g.runs) for g in groups)
    n = sizes[len(sizes) // 2] if sizes else 0
    sd = stats.pooled_sd([[r.metrics.get(PRIMARY, math.nan) for r in g.runs if r.status == "ok"]
                          for g in groups])
    delta = stats.detectable(sd, n)
    if not math.isfinite(delta):
        return "**Power:** fewer than 2 finished seeds per group: no spread to size the design."
    need = stats.seeds_needed(delta / 2, sd)
    return (f"**Power:** at n = {n} seeds per group and a pooled SD of {fmt(sd, 3)} FID, the "
            f"smallest difference detected with power 0.8 at α = 0.05 (two-sided t, before "
            f"Holm) is {fmt(delta, 3)} FID; detecting half of it ({fmt(delta / 2, 3)}) needs "
            f"{need if need else 'more than 10,000'} seeds per group.")


def select(groups: list[Group], selector: str) -> Group:
    """`report.baseline=`: a group id (`g2`) or `key=value[,key=value]` on its config."""
    matches = [g for g in groups if g.id == selector]
    if not matches:
        pairs = [p.split("=", 1) for p in selector.split(",") if "=" in p]
        matches = [g for g in groups if pairs and all(
            k in g.config and fmt(g.config[k]) == fmt(_number(v)) for k, v in pairs)]
    if len(matches) != 1:
        raise ValueError(
            f"report.baseline={selector} matches {len(matches)} groups; give a group id "
            f"({', '.join(g.id for g in groups)}) or key=value pairs that pick one: "
            + "; ".join(f"{g.id}: {g.label}" for g in groups))
    return matches[0]


def _number(text: str):
    try:
        return float(text)
    except ValueError:
        return text


def fmt(value, digits: int = 4) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        if value.is_integer() and 1e3 <= abs(value) < 1e12:  # counts: 32000, not 3.2e+04
            return str(int(value))
        return f"{value:.{digits}g}"
    return str(value)


def interval(s: Summary) -> str:
    """`mean [low, high]`, or `mean` alone when the interval is unknown (one seed)."""
    if not math.isfinite(s.mean):
        return "–"
    if not (math.isfinite(s.low) and math.isfinite(s.high)):
        return fmt(s.mean)
    return f"{fmt(s.mean)} [{fmt(s.low)}, {fmt(s.high)}]"


@dataclass
class Report:
    groups: list[Group]    # ranked
    differ: list[str]
    runs: list[Run]
    out: Path
    notes: list[str]
    reference: Group | None = None
    vs: str = "best"


def make_report(dirs: list[str | Path], ignore: tuple[str, ...] = (),
                baseline: str | None = None, out: str | Path | None = None) -> Report:
    dirs = [Path(d) for d in dirs]
    paths = find_runs(dirs)
    if not paths:
        raise FileNotFoundError(f"no run dirs (with .hydra/config.yaml) under "
                                f"{', '.join(map(str, dirs))}")
    runs = [load_run(p) for p in paths]
    groups, differ = group_runs(runs, tuple(ignore))
    worst = worst_value(runs)
    for g in groups:
        summarise(g, worst)
    ranked = rank(groups)
    reference = select(groups, baseline) if baseline else ranked[0]
    if baseline:
        relabel(groups, reference)
    compare(ranked, reference, "baseline" if baseline else "best")
    notes = [power_line(ranked)]
    if math.isfinite(worst) and any(r.status in FAILED for r in runs):
        notes.append(f"**Failures count:** a failed, diverged or unreadable run counts as FID "
                     f"{fmt(worst)} (the worst of guard.max_fid and every FID measured).")
    pending = [r for r in runs if r.status in PENDING]
    if pending:
        notes.append(f"**Not finished:** {len(pending)} run(s) still running or interrupted "
                     "are counted in the success rate but not scored.")
    notes += [f"**Unreadable:** `{r.dir}` ({'; '.join(unreadable(r.dir))}): counted as failed"
              for r in runs if r.status == "unreadable"]
    budgets = {g.id: g.budget() for g in ranked}
    if len(set(budgets.values())) > 1:
        notes.append("**Budget mismatch:** groups ran under different budgets: "
                     + "; ".join(f"{gid}: {b}" for gid, b in budgets.items()))
    out = Path(out) if out else dirs[0] / "report"
    out.mkdir(parents=True, exist_ok=True)
    report = Report(ranked, differ, runs, out, notes, reference,
                    "baseline" if baseline else "best")
    write_tables(report, dirs)
    plot_curves(report, out / "curves.png")
    plot_mosaic(report, out / "mosaic.png")
    return report


def columns(report: Report) -> list[str]:
    """Metrics some group has (label accuracy only for conditional generators)."""
    return [m for m in METRICS if any(math.isfinite(g.stats[m].mean) for g in report.groups)]


def spent_columns(report: Report) -> list[str]:
    return [k for k in SPENT if any(math.isfinite(g.spent[k]) for g in report.groups)]


def seed_values(g: Group) -> str:
    """Every seed's FID outcome, a failed one marked."""
    failed = {r.seed for r in g.runs if r.status in FAILED}
    return " ".join(f"{s}:{fmt(v)}{'✗' if s in failed else ''}"
                    for s, v in sorted(g.seeds.items(), key=lambda kv: str(kv[0])))


def verdict_row(i: int, g: Group) -> dict:
    c = g.comparison or Comparison()
    return {"rank": i, "group": g.id, "what differs": g.label, "n": len(g.runs),
            **g.counts(), "success": g.success(), "fid_median": g.outcome.median,
            "fid_mean": g.outcome.mean, "fid_low": g.outcome.low, "fid_high": g.outcome.high,
            "fid_seeds": seed_values(g), "diff": c.diff, "diff_low": c.low,
            "diff_high": c.high, "p": c.p, "p_holm": c.p_adjusted, "test": c.test,
            "verdict": g.verdict}


def write_csv(report: Report) -> None:
    metrics, spent = columns(report), spent_columns(report)
    rows = []
    for i, g in enumerate(report.groups, 1):
        row = verdict_row(i, g)
        for m in metrics:
            s = g.stats[m]
            row.update({f"{m}_scored_mean": s.mean, f"{m}_scored_median": s.median,
                        f"{m}_scored_low": s.low, f"{m}_scored_high": s.high,
                        f"{m}_interval": s.how})
        row.update({k: g.spent[k] for k in spent})
        row["budget"] = g.budget()
        row["runs"] = " ".join(str(r.dir) for r in g.runs)
        rows.append(row)
    with (report.out / "report.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def verdict_table(report: Report) -> list[str]:
    ref = report.reference
    header = ["#", "group", "what differs", "ok/all", "FID median", "FID mean [95 % t]",
              "FID per seed", f"Δ FID vs {ref.id if ref else '–'} [95 %]", "p", "p (Holm)",
              "test", "verdict"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for i, g in enumerate(report.groups, 1):
        c = g.comparison
        delta = "–" if c is None else (
            f"{fmt(c.diff)} [{fmt(c.low)}, {fmt(c.high)}]" if math.isfinite(c.diff)
            else "–")
        cells = [str(i), g.id, g.label, g.success(), fmt(g.outcome.median),
                 interval(g.outcome), seed_values(g), delta,
                 fmt(c.p, 2) if c else "–", fmt(c.p_adjusted, 2) if c else "–",
                 c.test if c else "reference", g.verdict]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def metrics_table(report: Report) -> list[str]:
    metrics, spent = columns(report), spent_columns(report)
    header = ["#", "group", *[f"{METRICS[m]} (median)" for m in metrics],
              *[SPENT[k] for k in spent]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for i, g in enumerate(report.groups, 1):
        cells = [str(i), g.id,
                 *[f"{interval(g.stats[m])} ({fmt(g.stats[m].median)})" for m in metrics],
                 *[fmt(g.spent[k]) for k in spent]]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def intro(report: Report, dirs: list[Path]) -> list[str]:
    against = (f"the baseline {report.reference.id}" if report.vs == "baseline"
               else f"the top-ranked group {report.reference.id}")
    return [
        f"# Report: {len(report.runs)} runs in {len(report.groups)} groups", "",
        f"From {', '.join(f'`{d}`' for d in dirs)}. A group is one config with its seeds. "
        "Ranked by success rate (ok runs of all), then by the median FID over the seeds (lower "
        "is better), a failed, diverged or unreadable seed counting as the worst FID. Each "
        "group is compared with "
        f"{against}: Δ is the difference of mean FIDs with its 95 % interval, by Welch's "
        "t-test, or by a paired t-test (`test` = paired) where the seeds match and the data "
        "and nets agree (same initial weights and data order); p-values are adjusted for the "
        "number of comparisons by Holm's method, and the verdict is taken at α = 0.05 on the "
        "Holm-adjusted p.", ""]


def write_tables(report: Report, dirs: list[Path]) -> None:
    write_csv(report)
    lines = intro(report, dirs) + [n + "\n" for n in report.notes]
    if report.differ:
        lines += ["## What differs between groups", ""]
        for k in report.differ:
            lines.append(f"- `{k}`: " + " | ".join(
                fmt(g.config.get(k, "<unset>")) for g in report.groups))
        lines.append("")
    lines += ["## Verdicts", "", *verdict_table(report), "",
              "## Final metrics and time spent", "",
              "Over the seeds that wrote final metrics (ok and diverged runs): mean [interval] "
              "(median). FID and KID: 95 % Student-t interval; bounded metrics (precision, "
              "recall, coverage, classes, rarest class, label scores): the seeds' min–max at "
              "n ≤ 3, else a 95 % bootstrap percentile interval. Time: means over runs, from "
              "status.json; `train s` is the training clock alone (what budget=time counts), "
              "`eval s` the evaluation, grids and checkpoints, `CPU s` the process's CPU time.",
              "", *metrics_table(report),
              "", "![FID curves](curves.png)", "", "![final grids](mosaic.png)", "",
              "## Runs", ""]
    for g in report.groups:
        lines.append(f"- {g.id} ({g.budget()}): " + ", ".join(
            f"`{r.dir.name}` ({r.status})" for r in g.runs))
    (report.out / "report.md").write_text("\n".join(lines) + "\n")
