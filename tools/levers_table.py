"""The lever tables of docs/digits/levers.md (issue 29), decided by `gan.report`'s own rule
(`gan.sweeps.verdicts.analyse`, through tools/digits_table.py: failures by Fisher, quality by
exact ranks with failures tied at the worst, Holm within each family).

    python tools/levers_table.py outputs/lever > docs/digits/levers.tsv   # collect the runs
    python tools/levers_table.py docs/digits/levers.tsv                   # the tables

The run folders are `<name>_s<seed>` (one `python -m gan.train seed=<seed> threads=1
hydra.run.dir=...` each, two side by side on 2 cores); ROWS below says which name is which
lever, its family and its reference. The TSV keeps every seed's FID, status, precision,
coverage, rarest class, training seconds and images per second, so the tables outlive the
folders.
"""

from __future__ import annotations

import csv
import json
import math
import statistics as st
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from digits_table import decide, table  # noqa: E402

from gan.io.artefacts import run_verdict  # noqa: E402

OLD = "old default (batch 32, lr 2e-4, 4 epochs)"
NEW = "new default (batch 64, lr 4e-4, 8 epochs)"
# name in outputs/lever -> (technique, family, reference); a reference row has family "reference"
ROWS = {
    "def": (OLD, "reference", ""),
    "new": (NEW, "reference", ""),
    "new ": (NEW + " vs old", "confirmation", OLD),
    "b64": ("batch 64, lr 4e-4 (equal images: 240,000)", "old_default", OLD),
    "e6": ("6 epochs (360,000 images)", "old_default", OLD),
    "b64e6": ("batch 64, lr 4e-4, 6 epochs", "old_default", OLD),
    "b64e8": ("batch 64, lr 4e-4, 8 epochs (the new default, 1 thread)", "old_default", OLD),
    "d32": ("D width 32", "old_default", OLD),
    "k100": ("100 clusters", "old_default", OLD),
    "first500": ("first reclustering at D step 500", "levers", NEW),
    "restarts": ("k-means 3 restarts + empty clusters reseeded", "levers", NEW),
    "bnreal": ("clusters on real-batch BatchNorm statistics", "levers", NEW),
    "emabn": ("EMA with recomputed BatchNorm statistics (2,000 samples)", "levers", NEW),
    "mog": ("DeLiGAN mixture prior (50 components)", "levers", NEW),
    "cgan": ("labelled cGAN (tricks=[ema] model.conditional=true), same budget", "labelled", NEW),
    "hinge8": ("loss=hinge", "losses", NEW),
    "lsgan8": ("loss=lsgan", "losses", NEW),
    "rpgan8": ("loss=rpgan", "losses", NEW),
    "rp_r1r2": ("loss=rpgan + R1 + R2 (gamma 1)", "losses", NEW),
    "rp_lr2": ("loss=rpgan, lr 2e-4", "losses", NEW),
    "wgp2_8": ("loss=wgan_gp loss.n_critic=2", "losses", NEW),
    "wgp5_8": ("loss=wgan_gp (n_critic 5)", "losses", NEW),
    "wgan8": ("loss=wgan", "losses", NEW),
    "wgan_lp8": ("loss=wgan_lp", "losses", NEW),
    "wlp2_8": ("loss=wgan_lp loss.n_critic=2", "losses", NEW),
    "mlp": ("model=mlp", "nets", NEW),
}
FAMILIES = ("confirmation", "old_default", "levers", "labelled", "losses", "nets")
COLUMNS = ("family", "technique", "reference", "pairs", "seed", "fid", "status", "precision",
           "coverage", "min_class_share", "memorisation_ratio", "train_s", "img_per_s")


def collect(root: Path) -> None:
    out = csv.writer(sys.stdout, delimiter="\t", lineterminator="\n")
    out.writerow(COLUMNS)
    for name, (technique, family, reference) in ROWS.items():
        for run in sorted(root.glob(f"{name.strip()}_s[0-9]")):
            spent = json.loads((run / "status.json").read_text()) \
                if (run / "status.json").is_file() else {"status": "running"}
            if spent.get("status") == "running":  # still training: not a result yet
                continue
            status = run_verdict(run)
            metrics = json.loads((run / "metrics.json").read_text())["metrics"] \
                if (run / "metrics.json").is_file() else {}
            out.writerow([family, technique, reference, "no", run.name.rsplit("_s", 1)[1],
                          round(metrics.get("fid", math.inf), 2),
                          "ok" if status == "ok" else status,
                          *(round(metrics.get(k, math.nan), 4) for k in
                            ("precision", "coverage", "min_class_share", "memorisation_ratio")),
                          spent.get("train_s"), spent.get("img_per_s")])


def load(path: Path) -> dict:
    rows: dict = {}
    for r in csv.DictReader(path.open(), delimiter="\t"):
        row = rows.setdefault(r["technique"], {"family": r["family"], "reference": r["reference"],
                                               "pairs": False, "seeds": [], "extra": []})
        row["seeds"].append((r["seed"], float(r["fid"]), r["status"]))
        row["extra"].append(r)
    return rows


def summary(rows: dict) -> list[str]:
    """Per row: seeds, FID mean [95 % t], precision, coverage, rarest class, train s, img/s."""
    from scipy import stats
    lines = ["| technique | seeds ok | FID mean [95 % t] | precision | coverage | rarest class "
             "(min over seeds) | memorisation ratio | train s | img/s (1 thread) |",
             "|" + "---|" * 9]
    for name, row in rows.items():
        fids = [v for _, v, s in row["seeds"] if s == "ok"]
        n = len(fids)
        if n >= 2:
            h = stats.t.ppf(0.975, n - 1) * st.stdev(fids) / math.sqrt(n)
            cell = f"{st.mean(fids):.1f} [{st.mean(fids) - h:.1f}, {st.mean(fids) + h:.1f}]"
        else:
            cell = f"{fids[0]:.1f} (1 seed)" if fids else "–"

        def mean(key, scale=1.0, digits=2, extra=row["extra"]):
            vals = [float(e[key]) * scale for e in extra if e[key] not in ("", "nan")]
            return f"{st.mean(vals):.{digits}f}" if vals else "–"
        rare = [float(e["min_class_share"]) * 100 for e in row["extra"]
                if e["min_class_share"] not in ("", "nan")]
        lines.append(f"| {name} | {n}/{len(row['seeds'])} | {cell} | {mean('precision')} | "
                     f"{mean('coverage')} | {min(rare):.1f} % | {mean('memorisation_ratio')} | "
                     f"{mean('train_s', digits=0)} | {mean('img_per_s', digits=0)} |"
                     if rare else f"| {name} | 0/{len(row['seeds'])} | – | – | – | – | – | – | – |")
    return lines


def main(source: Path) -> None:
    if source.is_dir():
        collect(source)
        return
    rows = load(source)
    print("\n".join(summary(rows)))
    print()
    print("\n".join(table(decide(rows, FAMILIES), rows)))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/digits/levers.tsv"))
