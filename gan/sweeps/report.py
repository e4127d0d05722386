"""Compare the runs of sweeps: `python -m gan.report DIR [DIR ...] [report.ignore=[k,...]]
[report.baseline=key=value[,key=value]]`.

DIR is a sweep folder (basic, joblib, submitit or Optuna), or run dirs; every run dir below it
(a folder with `.hydra/config.yaml`) is read. Runs are grouped by their config minus `seed`
(and the `report.ignore` keys): the seeds of one variant. `report/` inside the first DIR gets

- `report.md`, `report.csv`: one row per group, ranked by mean final FID, with the mean and the
  95 % Student-t interval over seeds of every final metric, and the config keys whose values
  differ between groups (a loss file that brings its own optimizer shows up there);
- `curves.png`: FID against wall time and against images seen, mean per group with its band;
- `mosaic.png`: the final grid of each group, labelled with its differing keys.

Statistics use every run that wrote final metrics (ok or diverged: a variant that diverges is
worse, not absent); failed runs are counted, not averaged.
"""

from __future__ import annotations

import csv
import json
import math
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import OmegaConf

from gan.io.artefacts import read_status

# Final metrics (metrics.json, `val/<name>`), in table order, with their column titles.
METRICS = {"fid": "FID", "kid": "KID", "precision": "precision", "recall": "recall",
           "coverage": "coverage", "classes_covered": "classes",
           "min_class_share": "rarest class", "label_accuracy": "label acc",
           "label_purity": "label purity"}


SPENT = {"wall_s": "wall s", "img_per_s": "img/s", "g_step": "G steps",
         "images_seen": "images"}


STATUS_COLUMNS = ("ok", "diverged", "failed")


DEFAULT_IGNORE = ("seed",)


@dataclass
class Run:
    dir: Path
    config: dict          # flat `a.b.c` -> value, interpolations resolved where they can be
    seed: object
    status: str           # ok | diverged | failed | interrupted | running
    metrics: dict         # final metrics, names without `val/`
    record: dict          # status.json
    curve: list = field(default_factory=list)  # curve.csv rows, floats
    derived: set = field(default_factory=set)  # keys set by an interpolation (`${..lr_g}`)


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
    those Hydra fills in at run time (`${hydra:...}`) stay as written."""
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
        out[path] = json.dumps(node) if isinstance(node, (list, dict)) else node

    walk(raw, prefix)
    return out


def run_status(run_dir: Path, record: dict, has_metrics: bool) -> str:
    status = record.get("status")
    if (run_dir / "FAILED.txt").exists() or status == "failed":
        return "failed"
    if status in ("diverged", "interrupted", "running", "pruned"):
        return status
    if status == "done" or has_metrics or (run_dir / "samples" / "final.png").is_file():
        return "ok"
    return "failed"  # never finished and says nothing: killed, or crashed before status.json


def read_curve(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    rows = []
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            rows.append({k: float(v) if v not in ("", None) else math.nan
                         for k, v in row.items()})
    return rows


def load_run(run_dir: Path) -> Run:
    cfg = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    derived: set = set()
    flat = flatten(cfg, derived=derived)
    hydra_yaml = run_dir / ".hydra" / "hydra.yaml"
    if hydra_yaml.is_file():  # group choices (`loss: hinge`) read better than their _target_
        choices = OmegaConf.select(OmegaConf.load(hydra_yaml), "hydra.runtime.choices") or {}
        flat.update({k: v for k, v in choices.items() if not k.startswith("hydra")
                     and v is not None})
    metrics_json = run_dir / "metrics.json"
    metrics = {}
    if metrics_json.is_file():
        metrics = {k.removeprefix("val/"): float(v)
                   for k, v in json.loads(metrics_json.read_text())["metrics"].items()}
    record = read_status(run_dir)
    return Run(run_dir, flat, cfg.get("seed"), run_status(run_dir, record, bool(metrics)),
               metrics, record, read_curve(run_dir / "curve.csv"), derived)


def t_interval(values: list[float], confidence: float = 0.95) -> tuple[float, float]:
    """Mean and half-width of the Student-t interval; (x, inf) for one value, (nan, nan) for
    none: one seed says nothing about the spread."""
    from scipy import stats

    xs = [v for v in values if v is not None and math.isfinite(v)]
    if not xs:
        return math.nan, math.nan
    mean = sum(xs) / len(xs)
    if len(xs) == 1:
        return mean, math.inf
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1))
    return mean, float(stats.t.ppf((1 + confidence) / 2, len(xs) - 1)) * sd / math.sqrt(len(xs))


def overlaps(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] - a[1] <= b[0] + b[1] and b[0] - b[1] <= a[0] + a[1]


@dataclass
class Group:
    runs: list[Run]
    key: tuple
    id: str = ""
    label: str = ""
    chosen: list = field(default_factory=list)     # the keys labels may name
    stats: dict = field(default_factory=dict)      # metric -> (mean, half-width)
    spent: dict = field(default_factory=dict)      # wall_s, img_per_s, ... -> mean
    vs_best: str = ""
    vs_baseline: str = ""

    @property
    def config(self) -> dict:
        return self.runs[0].config

    def counts(self) -> dict:
        out = dict.fromkeys(STATUS_COLUMNS, 0)
        for run in self.runs:
            if run.status == "pruned":  # a search's pruner stopped it: not a failure
                out["pruned"] = out.get("pruned", 0) + 1
                continue
            out[run.status if run.status in ("ok", "diverged") else "failed"] += 1
        return out

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
    """Groups of runs whose configs agree on every key but `seed` and `ignore`, and the keys
    whose values differ between groups."""
    ignore = (*DEFAULT_IGNORE, *ignore)
    groups: dict[tuple, Group] = {}
    for run in runs:
        key = tuple(sorted((k, repr(v)) for k, v in run.config.items() if not ignored(k, ignore)))
        groups.setdefault(key, Group([], key)).runs.append(run)
    keys = sorted({k for g in groups for k, _ in g})
    differ = [k for k in keys if len({dict(g).get(k, "<unset>") for g in groups}) > 1]
    out = list(groups.values())
    derived = set().union(*(r.derived for r in runs))
    # Labels name what was chosen: not the keys that follow another (`optim.generator.lr:
    # ${..lr_g}`, `loss._target_` when the `loss` option differs); the list keeps them all.
    chosen = [k for k in differ if k not in derived
              and not (k.endswith("._target_") and k.removesuffix("._target_") in differ)]
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


def summarise(group: Group) -> None:
    scored = group.scored()
    for name in METRICS:
        group.stats[name] = t_interval([r.metrics.get(name, math.nan) for r in scored])
    fids = [r.metrics["fid"] for r in scored if math.isfinite(r.metrics.get("fid", math.nan))]
    group.stats["best_fid"] = (min(fids) if fids else math.nan, math.nan)
    for name in SPENT:
        values = [r.record[name] for r in group.runs if isinstance(r.record.get(name),
                                                                   (int, float))]
        group.spent[name] = sum(values) / len(values) if values else math.nan


def rank(groups: list[Group], baseline: Group | None = None) -> list[Group]:
    """Sorted by mean FID (groups without one last). A group whose interval overlaps the best
    group's is "not distinguishable from the best"; against a baseline, an interval entirely
    below is "better", entirely above "worse", overlapping "can't tell" (conservative)."""
    def fid(g):
        m = g.stats["fid"][0]
        return (0, m) if math.isfinite(m) else (1, 0)

    ranked = sorted(groups, key=fid)
    best = ranked[0].stats["fid"] if ranked and math.isfinite(ranked[0].stats["fid"][0]) else None
    for g in ranked:
        fid_g = g.stats["fid"]
        if best is None or not math.isfinite(fid_g[0]):
            g.vs_best = "no FID"
        elif g is ranked[0]:
            g.vs_best = "best"
        elif overlaps(fid_g, best):
            g.vs_best = "not distinguishable from the best"
        else:
            g.vs_best = "worse than the best"
        if baseline is not None:
            b = baseline.stats["fid"]
            if g is baseline:
                g.vs_baseline = "baseline"
            elif not (math.isfinite(fid_g[0]) and math.isfinite(b[0])):
                g.vs_baseline = "can't tell"
            elif fid_g[0] + fid_g[1] < b[0] - b[1]:
                g.vs_baseline = "better"
            elif fid_g[0] - fid_g[1] > b[0] + b[1]:
                g.vs_baseline = "worse"
            else:
                g.vs_baseline = "can't tell"
    return ranked


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


def pm(stat: tuple[float, float]) -> str:
    mean, half = stat
    if not math.isfinite(mean):
        return "–"
    return fmt(mean) if not math.isfinite(half) else f"{fmt(mean)} ± {fmt(half, 3)}"


@dataclass
class Report:
    groups: list[Group]    # ranked
    differ: list[str]
    runs: list[Run]
    out: Path
    notes: list[str]


def make_report(dirs: list[str | Path], ignore: tuple[str, ...] = (),
                baseline: str | None = None, out: str | Path | None = None) -> Report:
    dirs = [Path(d) for d in dirs]
    paths = find_runs(dirs)
    if not paths:
        raise FileNotFoundError(f"no run dirs (with .hydra/config.yaml) under "
                                f"{', '.join(map(str, dirs))}")
    runs = [load_run(p) for p in paths]
    groups, differ = group_runs(runs, tuple(ignore))
    for g in groups:
        summarise(g)
    reference = select(groups, baseline) if baseline else None
    if reference is not None:
        relabel(groups, reference)
    ranked = rank(groups, reference)
    notes = []
    budgets = {g.id: g.budget() for g in ranked}
    if len(set(budgets.values())) > 1:
        notes.append("**Budget mismatch:** groups ran under different budgets: "
                     + "; ".join(f"{gid}: {b}" for gid, b in budgets.items()))
    out = Path(out) if out else dirs[0] / "report"
    out.mkdir(parents=True, exist_ok=True)
    report = Report(ranked, differ, runs, out, notes)
    write_tables(report, dirs)
    plot_curves(report, out / "curves.png")
    plot_mosaic(report, out / "mosaic.png")
    return report


def columns(report: Report) -> list[str]:
    """Metrics some group has (label accuracy only for conditional generators)."""
    return [m for m in METRICS if any(math.isfinite(g.stats[m][0]) for g in report.groups)]


def write_tables(report: Report, dirs: list[Path]) -> None:
    metrics = columns(report)
    has_baseline = any(g.vs_baseline for g in report.groups)
    rows = []
    for i, g in enumerate(report.groups, 1):
        counts = g.counts()
        row = {"rank": i, "group": g.id, "what differs": g.label, "n": len(g.runs), **counts}
        for m in metrics:
            row[f"{m}_mean"], row[f"{m}_ci95"] = g.stats[m]
        row["best_fid"] = g.stats["best_fid"][0]
        row.update({k: g.spent[k] for k in SPENT})
        row["vs best"] = g.vs_best
        if has_baseline:
            row["vs baseline"] = g.vs_baseline
        row["budget"] = g.budget()
        row["runs"] = " ".join(str(r.dir) for r in g.runs)
        rows.append(row)
    with (report.out / "report.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    header = ["#", "group", "what differs", "n", "ok/div/fail",
              *[METRICS[m] for m in metrics], "best FID", *SPENT.values(), "vs best"]
    if has_baseline:
        header.append("vs baseline")
    lines = [f"# Report: {len(report.runs)} runs in {len(report.groups)} groups",
             "",
             f"From {', '.join(f'`{d}`' for d in dirs)}. A group is one config with its seeds. "
             "Metrics: mean ± half-width of the 95 % Student-t interval over the seeds that "
             "wrote final metrics (ok and diverged runs). Ranked by mean FID (lower is better); "
             "intervals that overlap the best's are marked \"not distinguishable from the "
             "best\".", ""]
    lines += [n + "\n" for n in report.notes]
    if report.differ:
        lines += ["## What differs between groups", ""]
        for k in report.differ:
            lines.append(f"- `{k}`: " + " | ".join(
                fmt(g.config.get(k, "<unset>")) for g in report.groups))
        lines.append("")
    lines += ["## Ranking", "", "| " + " | ".join(header) + " |",
              "|" + "---|" * len(header)]
    for i, g in enumerate(report.groups, 1):
        c = g.counts()
        cells = [str(i), g.id, g.label, str(len(g.runs)),
                 f"{c['ok']}/{c['diverged']}/{c['failed']}",
                 *[pm(g.stats[m]) for m in metrics], fmt(g.stats["best_fid"][0]),
                 *[fmt(g.spent[k]) for k in SPENT], g.vs_best]
        if has_baseline:
            cells.append(g.vs_baseline)
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "![FID curves](curves.png)", "", "![final grids](mosaic.png)", "",
              "## Runs", ""]
    for g in report.groups:
        lines.append(f"- {g.id} ({g.budget()}): " + ", ".join(
            f"`{r.dir.name}` ({r.status})" for r in g.runs))
    (report.out / "report.md").write_text("\n".join(lines) + "\n")


def _group_curve(group: Group, x: str) -> tuple[list[float], list[float], list[float]]:
    """Mean x, mean FID and its half-width at each evaluation (curves aligned by index; the
    final n_final evaluation is left out as it uses more samples)."""
    curves = []
    for run in group.scored():
        rows = [r for r in run.curve if math.isfinite(r.get("val/fid", math.nan))]
        if rows:
            rows = [r for r in rows if r.get("n") == rows[0].get("n")]
            curves.append(rows)
    if not curves:
        return [], [], []
    length = min(len(c) for c in curves)
    xs, ys, hs = [], [], []
    for i in range(length):
        xs.append(sum(c[i].get(x, math.nan) for c in curves) / len(curves))
        mean, half = t_interval([c[i]["val/fid"] for c in curves])
        ys.append(mean)
        hs.append(half if math.isfinite(half) else 0.0)
    return xs, ys, hs


def plot_curves(report: Report, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), dpi=100)
    drawn = False
    for g in report.groups:
        for ax, x in zip(axes, ("wall_s", "images_seen")):
            xs, ys, hs = _group_curve(g, x)
            if not xs:
                continue
            drawn = True
            (line,) = ax.plot(xs, ys, marker="o", ms=3, label=f"{g.id}: {g.label}"[:60])
            # FID > 0; log axis: a study spans FID 10 to 1,000 and the good groups sit low
            ax.fill_between(xs, [max(y - h, y / 10) for y, h in zip(ys, hs)],
                            [y + h for y, h in zip(ys, hs)],
                            color=line.get_color(), alpha=0.2)
    for ax, title in zip(axes, ("wall time (s)", "real images seen by D")):
        ax.set_xlabel(title)
        ax.set_ylabel("FID (mean, 95 % band; log scale)")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
    if drawn:
        axes[1].legend(fontsize=7)
    else:
        axes[0].text(0.5, 0.5, "no curve.csv with val/fid", ha="center",
                     transform=axes[0].transAxes)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


MOSAIC_COLS = 4


MOSAIC_TILE = (3.0, 3.6)  # inches per group; at 100 dpi: 300 x 360 pixels


def mosaic_size(n_groups: int) -> tuple[int, int]:
    """(width, height) in pixels of mosaic.png for `n_groups` groups."""
    cols = min(MOSAIC_COLS, max(n_groups, 1))
    rows = math.ceil(max(n_groups, 1) / cols)
    return round(cols * MOSAIC_TILE[0] * 100), round(rows * MOSAIC_TILE[1] * 100)


def plot_mosaic(report: Report, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(report.groups)
    width, height = mosaic_size(n)
    cols = min(MOSAIC_COLS, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width / 100, height / 100), dpi=100,
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, (ax, g) in enumerate(zip(axes.flat, report.groups), 1):
        grids = sorted((r for r in g.runs if (r.dir / "samples" / "final.png").is_file()),
                       key=lambda r: (r.status != "ok", str(r.seed)))
        if grids:
            ax.imshow(plt.imread(grids[0].dir / "samples" / "final.png"), cmap="gray")
        else:
            ax.text(0.5, 0.5, "no final grid", ha="center", va="center")
        title = f"#{i} {g.id}  FID {pm(g.stats['fid'])}\n" + "\n".join(
            textwrap.wrap(g.label, 40)[:3])
        ax.set_title(title, fontsize=7)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.9, wspace=0.05, hspace=0.35)
    fig.savefig(path)
    plt.close(fig)
