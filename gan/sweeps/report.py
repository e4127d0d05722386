"""Compare the runs of sweeps: `python -m gan.report DIR [DIR ...] [report.ignore=[k,...]]
[report.baseline=key=value[,key=value]]`.

DIR is a sweep folder (basic, joblib, submitit or Optuna), or run dirs; every run dir below it
(a folder with `.hydra/config.yaml`) is read. Runs are grouped by their config minus `seed`,
bookkeeping keys (`BOOKKEEPING`) and the `report.ignore` keys: the seeds of one variant. Groups
are named by Hydra choices and values (`loss=hinge`), never by class paths. `report/` inside
the first DIR gets

- `report.md`, `report.csv`: per group, against the baseline (`report.baseline=`) or else the
  top-ranked group with 2 runs or more, two families under Holm (`gan.sweeps.verdicts`): failed
  k/n with Fisher's exact test, and an exact rank test with failures tied at the worst rank
  (Mann–Whitney; Wilcoxon signed-rank where the runs pair by seed), the Hodges–Lehmann shift
  with its simultaneous interval, P(improvement), Welch on the successful runs (conditional,
  unadjusted), the verdict; every run's FID and the median; every final metric with its
  interval (Student-t; bounded metrics: the runs' range at n <= 3, else the t interval
  clipped to the range; `modes` 0..1,000, `memorisation_ratio` >= 0 among them); what the
  design can detect; the time spent (training, evaluation, CPU, each said);
- `curves.png`: the primary metric (curve.csv's `val/<metric>`) against training time and
  against images seen, mean per group with its band;
- `mosaic.png`: the final grid of each group, labelled with its differing keys;
- `nearest.png` (`report.nearest`, default on): for the top 6 groups, 8 seeded samples of the
  first ok run's last.ckpt above their nearest training images in the run's extractor
  features, with the group's memorisation ratio (`gan.sweeps.nearest`); a group it cannot
  picture (no checkpoint, no extractor, no data root) gets a one-line note instead.

The primary metric is the data's: each data module declares what ranks its runs and which way
is better (`mode_kl` for Stacked MNIST, `fid` for the rest), and metrics.json records it in its
protocol stamp (`primary`, `primary_better`); a file from before the key declares `fid`
(`PRIMARY`). Ranking, the verdicts, the per-seed column, the curves, the column titles and the
intro use and name the metric the runs declare; report.csv's primary columns are named after it
(`fid_median` for FID runs, as always; `mode_kl_median` for Stacked MNIST). Runs declaring
different primaries are refused in one line (`check_protocol`).

Failures count: a failed, diverged or unreadable run is the worst outcome, +inf: tied at the
worst rank, so no value imputed for it moves a p-value, and a variant that diverges in any seed
ranks below one that never does. Groups rank by success rate, then by their median primary
metric. Runs whose metrics were measured against different data or features are refused.
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
    PRIMARY_DEFAULT,
    Unreadable,
    declared_primary,
    read_curve,
    read_metrics,
    read_protocol,
    read_status,
    run_verdict,
    unreadable,
)
from gan.io.legacy import current_target
from gan.io.usage import UsageError
from gan.sweeps import ranks, stats
from gan.sweeps.figures import mosaic_size, plot_curves, plot_mosaic
from gan.sweeps.nearest import NEAREST_GROUPS, NEAREST_SAMPLES, nearest_rows, plot_nearest
from gan.sweeps.stats import t_interval
from gan.sweeps.verdicts import (
    BOOTSTRAP_FROM,
    FAIL,
    Analysis,
    Arm,
    analyse,
    pairs_reach,
    power,
)

__all__ = ["make_report", "mosaic_size", "t_interval", "Report", "Group", "Run"]

# Final metrics (metrics.json), in table order, with their column titles.
METRICS = {"fid": "FID", "mode_kl": "mode KL", "modes": "modes", "kid": "KID",
           "precision": "precision", "recall": "recall", "coverage": "coverage",
           "classes_covered": "classes", "min_class_share": "rarest class",
           "label_accuracy": "label acc", "label_purity": "label purity",
           "memorisation_ratio": "memorisation ratio"}
# What ranks and what the verdicts test, lower better, where the runs declare nothing (a
# metrics.json from before `protocol.primary`); runs declare their data's (`mode_kl` for
# Stacked MNIST: gan.data.images.ImageDataModule.primary_metric).
PRIMARY = PRIMARY_DEFAULT[0]
# Metrics bounded to a range (classes_covered: 0 .. the dataset's classes; modes: 0 .. 1,000
# digit triples): their intervals must stay inside it.
BOUNDED = {"precision": (0.0, 1.0), "recall": (0.0, 1.0), "coverage": (0.0, 1.0),
           "min_class_share": (0.0, 1.0), "label_accuracy": (0.0, 1.0),
           "label_purity": (0.0, 1.0), "classes_covered": (0.0, math.inf),
           "modes": (0.0, 1000.0), "memorisation_ratio": (0.0, math.inf)}


def title(metric: str) -> str:
    """A metric's column title (`FID`, `mode KL`)."""
    return METRICS.get(metric, metric)

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
    protocol: dict = field(default_factory=dict)  # what its metrics are relative to


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


UNREADABLE_CONFIG = "unreadable .hydra/config.yaml"


def load_run(run_dir: Path) -> Run:
    try:
        cfg = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
        if not OmegaConf.is_dict(cfg):
            raise ValueError("not a mapping")
    except Exception as err:  # noqa: BLE001 (any parse error: the run is named, not fatal)
        # Its variant is unknown: it joins the other runs whose config cannot be read, one
        # group, every run counted failed.
        return Run(run_dir, {UNREADABLE_CONFIG: True}, None, "unreadable", {}, {},
                   problem=f".hydra/config.yaml: {str(err).splitlines()[0][:80]}")
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
               read_status(run_dir), read_curve(run_dir), derived,
               protocol=read_protocol(run_dir))


@dataclass
class Summary:
    """One metric over a group's runs: mean, median, an interval (`how`: Student-t, min–max
    or t clipped to the metric's range) and the values."""
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
        how = "min–max" if len(xs) <= 3 else "t, clipped"
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
    outcome: Summary = field(default_factory=Summary)  # PRIMARY over the successful runs
    outcomes: list = field(default_factory=list)   # (run, PRIMARY or FAIL), every finished run
    median: float = math.nan                       # PRIMARY's median, a failure the worst
    spent: dict = field(default_factory=dict)      # train_s, eval_s, ... -> mean
    comparison: Analysis | None = None             # vs the reference; None for the reference
    unpaired: str = ""                             # why the comparison is not paired
    verdict: str = ""
    primary: str = PRIMARY                         # the metric that ranks (the runs' declared)

    @property
    def config(self) -> dict:
        return self.runs[0].config

    @property
    def headline(self) -> str:
        return f"{title(self.primary)} median {fmt(self.median)}"

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
    readable = [g for g in groups if (UNREADABLE_CONFIG, "True") not in g]
    keys = sorted({k for g in readable for k, _ in g})
    differ = [k for k in keys if len({dict(g).get(k, "<unset>") for g in readable}) > 1]
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
        if UNREADABLE_CONFIG in g.config:
            g.label = f"{UNREADABLE_CONFIG}: " + ", ".join(r.dir.name for r in g.runs)
    return out, differ


def relabel(groups: list[Group], baseline: Group) -> None:
    """Against a baseline, a group is labelled by the chosen keys where it differs from the
    baseline alone (a study's `wider` row names the widths, not the twenty keys every variant
    shares), and a group option that differs (`model=mlp`) stands for the keys under it. The
    baseline keeps its full label, the reference the others are read against."""
    for g in groups:
        if g is baseline or UNREADABLE_CONFIG in g.config:
            continue
        keys = [k for k in g.chosen if fmt(g.config.get(k, "<unset>"))
                != fmt(baseline.config.get(k, "<unset>"))]
        # `model=mlp` says it: not the nets' keys that come with the other option
        keys = [k for k in keys if not any(k.startswith(o + ".") for o in keys)]
        g.label = ", ".join(f"{k}={fmt(g.config.get(k, '<unset>'))}" for k in keys) or \
            "same config as the baseline"


def outcome(run: Run, primary: str = PRIMARY) -> float:
    """A run's primary outcome: the metric, or FAIL (+inf, the worst rank) for a failed,
    diverged or unreadable run; NaN when it has no outcome yet (pending) or wrote none."""
    if run.status in FAILED:
        return FAIL
    if run.status == "ok" and primary in run.metrics:
        return float(run.metrics[primary])
    return math.nan


def summarise(group: Group, primary: str = PRIMARY) -> None:
    group.primary = primary
    scored = group.scored()
    for name in METRICS:
        group.stats[name] = summary([r.metrics.get(name, math.nan) for r in scored],
                                    BOUNDED.get(name))
    # runs, not seeds, are the unit: two runs of one seed are two outcomes
    group.outcomes = [(r, outcome(r, primary)) for r in group.runs
                      if not math.isnan(outcome(r, primary))]
    values = [v for _, v in group.outcomes]
    group.outcome = summary(values)  # the successful runs: conditional on success
    group.median = statistics.median(values) if values else math.nan  # failures worst
    for name in SPENT:
        values = [r.record[name] for r in group.runs if isinstance(r.record.get(name),
                                                                   (int, float))]
        group.spent[name] = sum(values) / len(values) if values else math.nan


def rank(groups: list[Group]) -> list[Group]:
    """By success rate (ok runs of all), then by the median of the primary metric (FID, or
    what the runs declare: mode KL) with a failure counting as the worst
    (then by mean; groups without any outcome last). A variant that diverges in some seeds never
    ranks above one that never does, however good its survivors: a recipe is worth its
    failures. Within one success rate the median stays honest with failures in it."""
    def key(g):
        finished = [r for r in g.runs if r.status not in PENDING]
        rate = sum(r.status == "ok" for r in finished) / len(finished) if finished else 0.0
        mean = g.outcome.mean if math.isfinite(g.outcome.mean) else math.inf
        return (0, -rate, g.median, mean) if not math.isnan(g.median) else (1, 0.0, 0.0, 0.0)

    return sorted(groups, key=key)


# Keys that decide what a seed's weights and batches are: a paired test needs them equal
# (`data.*`, `model.*`, and `init_from*` wherever it sits: `callbacks.init_from.ckpt_path`).
PAIRING_KEYS = ("data", "model", "init_from")


def pairing(a: Group, b: Group, m: int = 1) -> str:
    """Why `a` and `b` are not paired by seed, or "" when they are: one run per seed on each
    side, the same seeds, and equal data, nets and initialisation (`init_from*`), so the same
    seed gives the same initial weights and the same data order; and enough pairs (6) for the
    signed-rank test to pass Holm's first step over the `m` comparisons (`pairs_reach`)."""
    seeds_a = [r.seed for r, _ in a.outcomes]
    seeds_b = [r.seed for r, _ in b.outcomes]
    if len(set(seeds_a)) != len(seeds_a) or len(set(seeds_b)) != len(seeds_b):
        return "a seed runs twice"
    if set(seeds_a) != set(seeds_b) or len(seeds_a) < 2:
        return "the seeds differ"
    keys = sorted(k for k in {*a.config, *b.config} if any(
        part == p or part.startswith(p + "_") for part in k.split(".") for p in PAIRING_KEYS)
        and (k.split(".")[0] in PAIRING_KEYS or "init_from" in k))
    differ = [k for k in keys if fmt(a.config.get(k)) != fmt(b.config.get(k))]
    if differ:
        return f"{', '.join(differ)} differ"
    if not pairs_reach(len(seeds_a), m):
        return (f"{len(seeds_a)} seed pairs: the signed-rank test cannot reach "
                f"p < {stats.ALPHA / m:.2g}")
    return ""


def arms(g: Group, reference: Group, m: int) -> tuple[Arm, Arm, bool]:
    """The two arms of one comparison, in seed order when they pair."""
    if not pairing(g, reference, m):
        ref = {r.seed: v for r, v in reference.outcomes}
        ordered = sorted(g.outcomes, key=lambda rv: str(rv[0].seed))
        return (Arm([v for _, v in ordered], [r.seed for r, _ in ordered]),
                Arm([ref[r.seed] for r, _ in ordered], [r.seed for r, _ in ordered]), True)
    return (Arm([v for _, v in g.outcomes]), Arm([v for _, v in reference.outcomes]), False)


def compare(groups: list[Group], reference: Group | None, vs: str) -> None:
    """Each group against `reference`, by `gan.sweeps.verdicts.analyse`: the failure family and
    the quality family, each under Holm. `vs`: `baseline` or `best`."""
    if reference is None:
        for g in groups:
            g.verdict = "no reference (no group has 2 runs)"
        return
    others = [g for g in groups if g is not reference]
    results = analyse([arms(g, reference, len(others)) for g in others], vs)
    for g, result in zip(others, results):
        g.comparison, g.verdict = result, result.verdict
        g.unpaired = pairing(g, reference, len(others))
    reference.verdict = vs


def power_line(groups: list[Group], reference: Group | None, primary: str = PRIMARY) -> str:
    """What the design can detect: the shift the quality family's rank test (the one the
    verdicts use) finds with power 0.8 at Holm's first step and at its last, at the design's
    runs per group and the pooled SD of the successful runs (simulated with normal runs)."""
    sizes = sorted(len(g.outcomes) for g in groups)
    n = sizes[len(sizes) // 2] if sizes else 0
    m = max(len(groups) - 1, 1)
    sd = stats.pooled_sd([[v for _, v in g.outcomes if math.isfinite(v)] for g in groups])
    if reference is None or n < 2 or not sd > 0:
        return "**Power:** fewer than 2 successful runs per group: no spread to size the design."
    first, last = power(sd, n, n, m)
    smallest = ranks.min_p(n, n)
    name = title(primary)

    def said(delta, alpha):
        return (f"{fmt(delta, 3)} {name} at α = {alpha:.2g}" if math.isfinite(delta) else
                f"no shift at α = {alpha:.2g} (its smallest p is {smallest:.2g})")

    return (f"**Power:** at n = {n} runs per group and a pooled SD of {fmt(sd, 3)} {name} "
            f"(successful runs), the exact two-sided Mann–Whitney test finds with power 0.8 "
            f"{said(first, stats.ALPHA / m)} (Holm's first step over {m}) and "
            f"{said(last, stats.ALPHA)} (its last step); simulated with normal runs.")


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
        if math.isinf(value):
            return "∞" if value > 0 else "−∞"
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
    primary: str = PRIMARY  # the metric that ranks, as the runs declare it
    nearest: list = field(default_factory=list)  # nearest.png's rows (gan.sweeps.nearest)
    nearest_notes: list = field(default_factory=list)  # groups it skipped, one line each


# What a metric is relative to: groups that differ here are not comparable at all. Config keys
# that name the dataset, and the protocol stamp of metrics.json (the real split, the feature
# extractor, the number of samples).
PROTOCOL_CONFIG = ("data", "data.class", "data.name")
PROTOCOL_STAMP = ("dataset", "extractor", "reference", "n")


def declared(run: Run) -> tuple[str, str] | None:
    """(metric, direction) the run's metrics.json declares it is ranked by (FID, lower, for a
    file from before the key); None for a run that wrote no metrics (it declares nothing)."""
    return declared_primary(run.protocol) if run.metrics else None


def check_protocol(runs: list[Run]) -> str:
    """Refuse, in one line naming the keys, runs whose metrics were measured differently, or
    that declare different primary metrics (one report ranks by one metric). Returns the
    primary metric the runs declare (PRIMARY where none wrote metrics)."""
    differ = [k for k in PROTOCOL_CONFIG
              if len({fmt(r.config.get(k)) for r in runs if k in r.config}) > 1]
    differ += [f"metrics.json protocol.{k}" for k in PROTOCOL_STAMP
               if len({fmt(r.protocol.get(k)) for r in runs if k in r.protocol}) > 1]
    if differ:
        raise UsageError(
            "these runs measure their metrics against different data or features and do not "
            "compare: "
            + "; ".join(f"{k} = " + " | ".join(sorted({fmt(r.config.get(k)) if not k.startswith(
                "metrics") else fmt(r.protocol.get(k.rsplit('.', 1)[-1])) for r in runs}))
                for k in differ) + " (report each protocol's folders on their own)")
    primaries: dict[tuple[str, str], int] = {}
    for run in runs:
        if declared(run) is not None:
            primaries[declared(run)] = primaries.get(declared(run), 0) + 1
    if len(primaries) > 1:
        raise UsageError(
            "these runs declare different primary metrics (metrics.json protocol.primary = "
            + " | ".join(f"{m}, {d} better: {k} run(s)" for (m, d), k in sorted(primaries.items()))
            + "): one report ranks by one metric (report each data's folders on their own)")
    metric, better = next(iter(primaries), PRIMARY_DEFAULT)
    if better != "lower":
        raise UsageError(f"the runs declare primary={metric}, {better} better: gan.report ranks "
                         "by a lower-is-better primary metric only")
    return metric


def pick_reference(ranked: list[Group], baseline: str | None) -> Group | None:
    """`report.baseline=`'s group, else the top-ranked group with 2 runs or more: one run says
    nothing about spread, so an n = 1 group is never the reference."""
    if baseline:
        chosen = select(ranked, baseline)
        if len(chosen.outcomes) < 2:
            raise UsageError(f"report.baseline={baseline} picks {chosen.id}, which has "
                             f"{len(chosen.outcomes)} finished run(s): a reference needs 2 or more")
        return chosen
    return next((g for g in ranked if len(g.outcomes) >= 2), None)


def notes_for(ranked: list[Group], runs: list[Run], reference: Group | None,
              primary: str = PRIMARY) -> list[str]:
    notes = [power_line(ranked, reference, primary)]
    if reference is not None and len(
            [v for _, v in reference.outcomes if math.isfinite(v)]) < 2:
        notes.append(f"**Reference {reference.id}** has fewer than 2 successful runs: no "
                     "quality verdicts; failure rates are still compared.")
    if any(r.status in FAILED for r in runs):
        notes.append("**Failures count:** a failed, diverged or unreadable run is the worst "
                     f"outcome: tied at the worst rank, whatever {title(primary)} it "
                     "measured.")
    pending = [r for r in runs if r.status in PENDING]
    if pending:
        notes.append(f"**Not finished:** {len(pending)} run(s) still running or interrupted "
                     "are counted in the success rate but not scored.")
    notes += [f"**Unreadable:** `{r.dir}` ({'; '.join(unreadable(r.dir)) or r.problem}): "
              "counted as failed" for r in runs if r.status == "unreadable"]
    notes += [f"**Every run unreadable:** {g.id} ({g.label}): all {len(g.runs)} counted as "
              "failed" for g in ranked if all(r.status == "unreadable" for r in g.runs)]
    unpaired = [g for g in ranked if g.comparison and g.unpaired and g.unpaired != (
        "the seeds differ")]
    if unpaired:
        notes.append("**Not paired:** " + "; ".join(f"{g.id}: {g.unpaired}" for g in unpaired)
                     + " (Mann–Whitney instead).")
    budgets = {g.id: g.budget() for g in ranked}
    if len(set(budgets.values())) > 1:
        notes.append("**Budget mismatch:** groups ran under different budgets: "
                     + "; ".join(f"{gid}: {b}" for gid, b in budgets.items()))
    return notes


def make_report(dirs: list[str | Path], ignore: tuple[str, ...] = (),
                baseline: str | None = None, out: str | Path | None = None,
                nearest: bool = True) -> Report:
    dirs = [Path(d) for d in dirs]
    paths = find_runs(dirs)
    if not paths:
        raise FileNotFoundError(f"no run dirs (with .hydra/config.yaml) under "
                                f"{', '.join(map(str, dirs))}")
    runs = [load_run(p) for p in paths]
    primary = check_protocol(runs)
    groups, differ = group_runs(runs, tuple(ignore))
    for g in groups:
        summarise(g, primary)
    ranked = rank(groups)
    reference = pick_reference(ranked, baseline)
    if baseline:
        relabel(groups, reference)
    vs = "baseline" if baseline else "best"
    compare(ranked, reference, vs)
    notes = notes_for(ranked, runs, reference, primary)
    out = Path(out) if out else dirs[0] / "report"
    out.mkdir(parents=True, exist_ok=True)
    report = Report(ranked, differ, runs, out, notes, reference, vs, primary)
    if nearest:
        report.nearest, report.nearest_notes = nearest_rows(ranked)
        (out / "nearest.png").unlink(missing_ok=True)  # never a stale one from before
        if report.nearest:
            plot_nearest(report.nearest, out / "nearest.png")
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
    """Every run's primary outcome (FID, mode KL), by seed, a failed one marked (with what it
    measured, if anything: the rank tests never read it)."""
    cells = []
    for r, v in sorted(g.outcomes, key=lambda rv: str(rv[0].seed)):
        measured = r.metrics.get(g.primary)
        cells.append(f"{r.seed}:{fmt(v)}" if math.isfinite(v) else
                     f"{r.seed}:✗{'' if measured is None else f'({fmt(float(measured))})'}")
    return " ".join(cells)


def _range(low: float, high: float) -> str:
    return f"[{fmt(low)}, {fmt(high)}]"


def cells(g: Group) -> dict:
    """The comparison's cells, as the table and the CSV show them."""
    c = g.comparison
    if c is None:
        return {}
    welch = c.conditional
    return {
        "failures": f"{c.failures}/{c.n} {_range(c.fail_low, c.fail_high)}",
        "p_fail_holm": fmt(c.fail_p_holm, 2),
        "shift": "–" if not math.isfinite(c.p) else
        f"{fmt(c.shift)} {_range(c.shift_low, c.shift_high)} ({100 * c.shift_level:.3g} %)",
        "p_improve": "–" if math.isnan(c.p_improve) else fmt(c.p_improve, 2) + (
            f" {_range(c.p_improve_low, c.p_improve_high)}"
            if math.isfinite(c.p_improve_low) else ""),
        "test": c.test + (f", r = {c.r:.2f}" if math.isfinite(c.r) else ""),
        "p": fmt(c.p, 2), "p_holm": fmt(c.p_holm, 2),
        "welch": "–" if math.isnan(welch.diff) else
        f"{fmt(welch.diff)} {_range(welch.low, welch.high)}, p {fmt(welch.p, 2)}",
    }


def verdict_row(i: int, g: Group) -> dict:
    """One report.csv row. The primary metric's columns are named after it (`fid_median`,
    `mode_kl_median`), so FID reports keep the columns they always had; `primary` names it."""
    c = g.comparison or Analysis()
    p = g.primary
    return {"rank": i, "group": g.id, "what differs": g.label, "n": len(g.runs),
            **g.counts(), "success": g.success(), "primary": p, f"{p}_median": g.median,
            f"{p}_mean": g.outcome.mean, f"{p}_low": g.outcome.low,
            f"{p}_high": g.outcome.high, f"{p}_seeds": seed_values(g),
            "failures": c.failures, "finished": c.n, "fail_low": c.fail_low,
            "fail_high": c.fail_high, "p_fail": c.fail_p, "p_fail_holm": c.fail_p_holm,
            "test": c.test, "p": c.p, "p_holm": c.p_holm, "shift": c.shift,
            "shift_low": c.shift_low, "shift_high": c.shift_high,
            "shift_confidence": c.shift_level, "p_improve": c.p_improve,
            "p_improve_low": c.p_improve_low, "p_improve_high": c.p_improve_high,
            "pair_r": c.r, "welch_diff_success": c.conditional.diff,
            "welch_low_success": c.conditional.low, "welch_high_success": c.conditional.high,
            "welch_p_success_unadjusted": c.conditional.p, "verdict": g.verdict}


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
    name = title(report.primary)
    header = ["#", "group", "what differs", "ok/all", f"{name} median (failures worst)",
              f"{name} per seed", "failed k/n [95 % CP]", "Fisher p (Holm)",
              f"shift vs {ref.id if ref else '–'} [simultaneous]", "P(improvement)",
              "rank test", "p", "p (Holm)", "Welch Δ on successes [95 %], p (unadjusted)",
              "verdict"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for i, g in enumerate(report.groups, 1):
        c = cells(g)
        row = [str(i), g.id, g.label, g.success(), fmt(g.median), seed_values(g),
               *(c.get(k, "–") for k in ("failures", "p_fail_holm", "shift", "p_improve")),
               c.get("test", "reference" if g is ref else "–"),
               *(c.get(k, "–") for k in ("p", "p_holm", "welch")), g.verdict]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def metrics_table(report: Report) -> list[str]:
    metrics, spent = columns(report), spent_columns(report)
    header = ["#", "group", *[f"{title(m)} (median)" for m in metrics],
              *[SPENT[k] for k in spent]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for i, g in enumerate(report.groups, 1):
        cells = [str(i), g.id,
                 *[f"{interval(g.stats[m])} ({fmt(g.stats[m].median)})" for m in metrics],
                 *[fmt(g.spent[k]) for k in spent]]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def primary_said(metric: str) -> str:
    """The primary metric as the intro names it, with where it comes from."""
    if metric == PRIMARY:
        return "FID (the primary metric these runs declare; lower is better)"
    return (f"{title(metric)} (`{metric}`, the primary metric these runs' data declares in "
            "metrics.json; lower is better)")


def intro(report: Report, dirs: list[Path]) -> list[str]:
    against = (f"the baseline {report.reference.id}" if report.vs == "baseline" else
               f"the top-ranked group with 2 runs or more, {report.reference.id}"
               if report.reference else "no reference")
    return [
        f"# Report: {len(report.runs)} runs in {len(report.groups)} groups", "",
        f"From {', '.join(f'`{d}`' for d in dirs)}. A group is one config with its runs (two "
        "runs of one seed are two runs). Ranked by success rate (ok runs of all), then by the "
        f"median {primary_said(report.primary)}, a failed, diverged or unreadable run counting "
        "as the worst. Each group is "
        f"compared with {against} on two questions, each a family under Holm's correction: "
        "**does it fail more often** (failed k/n with its Clopper–Pearson interval, Fisher's "
        "exact test) and **is it better when it trains** (an exact rank test with every "
        "failure tied at the worst rank: Mann–Whitney, or Wilcoxon's signed-rank test where "
        "the runs pair one to one by seed with equal data, nets and `init_from`, with the "
        "seed pairs' correlation r). The shift is the Hodges–Lehmann estimate with the "
        "distribution-free interval of the same test at the Bonferroni level 1 − 0.05/m "
        "(simultaneous over the m comparisons; its exact confidence in brackets, which at "
        "few runs is what the design has, not 95 %). P(improvement) is P(a run of the group "
        f"beats a run of the reference), with its stratified bootstrap 95 % interval from "
        f"{BOOTSTRAP_FROM} runs per group (below, the bootstrap covers too little: measured "
        "70 % at 3 runs, 88 % at 5). The verdict comes from the Holm-adjusted p of each family "
        "at α = 0.05; `screen` where no outcome at this n could pass Holm. Welch's Δ over the "
        "successful runs alone is conditional on success and unadjusted: no verdict uses it.",
        ""]


def nearest_section(report: Report) -> list[str]:
    """report.md's memorisation picture: samples above their nearest training images."""
    if not (report.nearest or report.nearest_notes):
        return []
    lines = ["## Nearest training images (memorisation, visible)", "",
             f"Per group (the top {NEAREST_GROUPS} at most), {NEAREST_SAMPLES} samples of its "
             "first ok run's `checkpoints/last.ckpt` (fixed seed) above the training image "
             "nearest to each in the run's extractor features, with the group's memorisation "
             "ratio (median over its runs; below 1: samples sit closer to training images than "
             "held-out reals do). An FID gain from copying shows here as near-identical pairs.",
             ""]
    if report.nearest:
        lines += ["![samples above their nearest training images](nearest.png)", ""]
    lines += [f"- {note}" for note in report.nearest_notes]
    return lines + ([""] if report.nearest_notes else [])


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
              "Over the runs that wrote final metrics (ok and diverged runs): mean [interval] "
              "(median). FID, mode KL and KID: 95 % Student-t interval; bounded metrics "
              "(precision, recall, coverage, classes, rarest class, label scores, modes of "
              "1,000, memorisation ratio ≥ 0): the runs' min–max at "
              "n ≤ 3 (the values, no coverage claimed), else the 95 % Student-t interval "
              "clipped to the metric's range. Memorisation ratio: the samples' median "
              "nearest-training-image distance over held-out reals' (below 1: copying). "
              "Time: means over runs, from "
              "status.json; `train s` is the training clock alone (what budget=time counts), "
              "`eval s` the evaluation, grids and checkpoints, `CPU s` the process's CPU time.",
              "", *metrics_table(report),
              "", f"![{title(report.primary)} curves](curves.png)", "",
              "![final grids](mosaic.png)", "", *nearest_section(report),
              "## Runs", ""]
    for g in report.groups:
        lines.append(f"- {g.id} ({g.budget()}): " + ", ".join(
            f"`{r.dir.name}` ({r.status})" for r in g.runs))
    (report.out / "report.md").write_text("\n".join(lines) + "\n")
