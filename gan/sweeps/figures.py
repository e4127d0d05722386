"""The report's pictures: the primary metric's curves per group (`curves.png`: FID, or what the
runs declare, e.g. mode KL, from curve.csv's `val/<metric>` column) and the final grids
(`mosaic.png`). The nearest-training-image picture is gan/sweeps/nearest.py's."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

from gan.sweeps.stats import t_interval


def _group_curve(group, x: str, column: str = "val/fid"
                 ) -> tuple[list[float], list[float], list[float]]:
    """Mean x, mean of the metric's curve.csv `column` and its half-width at each evaluation
    (curves aligned by index; the final n_final evaluation is left out as it uses more
    samples)."""
    curves = []
    for run in group.scored():
        rows = [r for r in run.curve if math.isfinite(r.get(column, math.nan))]
        if rows:
            rows = [r for r in rows if r.get("n") == rows[0].get("n")]
            curves.append(rows)
    if not curves:
        return [], [], []
    length = min(len(c) for c in curves)
    xs, ys, hs = [], [], []
    for i in range(length):
        xs.append(sum(c[i].get(x, math.nan) for c in curves) / len(curves))
        mean, half = t_interval([c[i][column] for c in curves])
        ys.append(mean)
        hs.append(half if math.isfinite(half) else 0.0)
    return xs, ys, hs


def plot_curves(report, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gan.sweeps.report import title as metric_title

    primary = getattr(report, "primary", "fid")
    column, name = f"val/{primary}", metric_title(primary)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), dpi=100)
    drawn = False
    # curves written since the training clock was split carry train_s (evaluation excluded)
    clock = "train_s" if all(math.isfinite(row.get("train_s", math.nan)) for g in report.groups
                             for r in g.scored() for row in r.curve) else "wall_s"
    for g in report.groups:
        for ax, x in zip(axes, (clock, "images_seen")):
            xs, ys, hs = _group_curve(g, x, column)
            if not xs:
                continue
            drawn = True
            (line,) = ax.plot(xs, ys, marker="o", ms=3, label=f"{g.id}: {g.label}"[:60])
            # FID, KL > 0; log axis: a study spans FID 10 to 1,000 and the good groups sit low
            ax.fill_between(xs, [max(y - h, y / 10) for y, h in zip(ys, hs)],
                            [y + h for y, h in zip(ys, hs)],
                            color=line.get_color(), alpha=0.2)
    titles = {"train_s": "training time (s), evaluation excluded",
              "wall_s": "wall time (s), evaluation included"}
    for ax, title in zip(axes, (titles[clock], "real images seen by D")):
        ax.set_xlabel(title)
        ax.set_ylabel(f"{name} (mean, 95 % band; log scale)")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
    if drawn:
        axes[1].legend(fontsize=7)
    else:
        axes[0].text(0.5, 0.5, f"no curve.csv with {column}", ha="center",
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


def plot_mosaic(report, path: Path) -> None:
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
        title = f"#{i} {g.id}  {g.headline}\n" + "\n".join(
            textwrap.wrap(g.label, 40)[:3])
        ax.set_title(title, fontsize=7)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.9, wspace=0.05, hspace=0.35)
    fig.savefig(path)
    plt.close(fig)
