"""The technique tables of docs/digits/notes.md, decided by `gan.report`'s own rule
(`gan.sweeps.verdicts.analyse`: failures by Fisher, quality by exact ranks with failures tied at
the worst, Holm within each family).

    python tools/digits_table.py docs/digits/seeds.tsv     # the stored per-seed values
    python tools/digits_table.py outputs                   # the run folders, where they exist

Families, each its own Holm correction: `confirmation` (the new default against the old, the
5-seed design's one comparison), `techniques` (training techniques against the old default),
`samplers` (post-hoc samplers against the plain sampling of the same checkpoints), and the
separate small designs (`three_minutes`, `contender`, `fashion`). The stored file holds every
seed's FID as the docs print it, and whether the run diverged; the run folders are gone from
this machine.
"""

from __future__ import annotations

import csv
import json
import math
import statistics as st
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gan.io.artefacts import run_verdict  # noqa: E402
from gan.sweeps.verdicts import FAIL, Arm, analyse, pairs_reach  # noqa: E402

FAMILIES = ("confirmation", "techniques", "samplers", "three_minutes", "contender", "fashion")


def load_tsv(path: Path) -> dict:
    """technique -> {family, reference, pairs, seeds: [(seed, fid, status)]}."""
    rows: dict = {}
    for r in csv.DictReader(path.open(), delimiter="\t"):
        row = rows.setdefault(r["technique"], {"family": r["family"],
                                               "reference": r["reference"],
                                               "pairs": r["pairs"] == "yes", "seeds": []})
        row["seeds"].append((r["seed"], float(r["fid"]), r["status"]))
    return rows


def runs(pattern: str, root: Path) -> list[tuple]:
    """(seed, fid, status) of each run matching `pattern` under `root`."""
    out = []
    for p in sorted(root.glob(pattern)):
        stored = json.loads(p.read_text())["metrics"]  # schema 1 files: "val/fid"
        fid = {k.removeprefix("val/"): v for k, v in stored.items()}["fid"]
        seed = p.parent.name.rsplit("seed=", 1)[-1].split(",")[0] if "seed=" in p.parent.name \
            else "0"
        status = run_verdict(p.parent)
        out.append((seed, fid, "ok" if status == "ok" else status))
    return out


def load_outputs(root: Path) -> dict:
    """The same rows from the run folders (outputs/digits5, digits5_drs, digits_k100,
    digits_screen, digits_screen_posthoc)."""
    def row(family, reference, pattern, pairs=False):
        return {"family": family, "reference": reference, "pairs": pairs,
                "seeds": runs(pattern, root)}

    posthoc = "digits_screen_posthoc/variant_self_cond*-sampler_{}/metrics.json"
    rows = {
        "old default": row("reference", "", "digits5/variant=baseline,seed=*/metrics.json"),
        "self_cond_k50 plain": row("reference", "", "digits5/variant=self_cond_k50,*/metrics.json"),
        "self_cond plain": row("reference", "", "digits_screen/variant=self_cond,*/metrics.json"),
        "self_cond_k50 (the new default)": row(
            "confirmation", "old default", "digits5/variant=self_cond_k50,*/metrics.json"),
        "old default + DRS": row("samplers", "old default",
                                 "digits5_drs/variant=baseline,*/metrics.json", True),
        "self_cond_k50 + DRS": row("samplers", "self_cond_k50 plain",
                                   "digits5_drs/variant=self_cond_k50,*/metrics.json", True),
        "self_cond + truncation ψ 0.7": row("samplers", "self_cond plain",
                                            posthoc.format("truncation"), True),
        "self_cond + DRS": row("samplers", "self_cond plain", posthoc.format("drs"), True),
    }
    for name in ("self_cond_minibatch_std", "top_k", "minibatch_std", "mog", "self_cond_mog",
                 "info_w01", "info_w03", "info_w1"):
        rows[name] = row("techniques", "old default",
                         f"digits_screen/variant={name},*/metrics.json")
    rows["self_cond (k = 20)"] = row("techniques", "old default",
                                     "digits_screen/variant=self_cond,*/metrics.json")
    rows["self_cond_k50, k = 100"] = row("techniques", "old default",
                                         "digits_k100/variant=*/metrics.json")
    return {k: v for k, v in rows.items() if v["seeds"]}


def arm(seeds: list[tuple], order: list[str] | None = None) -> Arm:
    by_seed = {s: (FAIL if status != "ok" else fid) for s, fid, status in seeds}
    keys = order or [s for s, _, _ in seeds]
    return Arm([by_seed[k] for k in keys], keys)


def decide(rows: dict, families: tuple[str, ...] = FAMILIES) -> list[tuple]:
    """(family, technique, row, analysis) for every compared row, family by family."""
    out = []
    for family in families:
        members = [(name, row) for name, row in rows.items() if row["family"] == family]
        pairs = []
        for _, row in members:
            ref = rows[row["reference"]]["seeds"]
            seeds = [s for s, _, _ in row["seeds"]]
            paired = (row["pairs"] and sorted(seeds) == sorted(s for s, _, _ in ref)
                      and len(set(seeds)) == len(seeds) and pairs_reach(len(seeds),
                                                                         len(members)))
            pairs.append((arm(row["seeds"], seeds if paired else None),
                          arm(ref, seeds if paired else None), paired))
        for (name, row), result in zip(members, analyse(pairs)):
            out.append((family, name, row, result))
    return out


def f(v: float, digits: int = 1) -> str:
    if math.isnan(v):
        return "–"
    return ("+∞" if v > 0 else "−∞") if math.isinf(v) else f"{v:+.{digits}f}"


def table(decided: list[tuple], rows: dict) -> list[str]:
    lines = ["| family | technique | vs | runs | failed | FID median | FID per seed | "
             "shift [simultaneous] | rank test | p | Holm p | Fisher p (Holm) | "
             "Welch Δ on successes, p (unadjusted) | verdict |", "|" + "---|" * 14]
    for family, name, row, r in decided:
        values = [FAIL if s != "ok" else v for _, v, s in row["seeds"]]
        per_seed = " / ".join(f"{v:.1f}" + ("✗" if s != "ok" else "")
                              for _, v, s in row["seeds"])
        shift = (f"{f(r.shift)} [{f(r.shift_low)}, {f(r.shift_high)}] "
                 f"({100 * r.shift_level:.3g} %)")
        welch = r.conditional
        cond = "–" if math.isnan(welch.diff) else f"{f(welch.diff)}, {welch.p:.2g}"
        median = st.median(values)
        lines.append(
            f"| {family} | {name} | {row['reference']} | {r.n} | {r.failures} | "
            f"{'∞' if math.isinf(median) else f'{median:.1f}'} | {per_seed} | {shift} | "
            f"{r.test} | {r.p:.2g} | "
            f"{r.p_holm:.2g} | {r.fail_p_holm:.2g} | {cond} | {r.verdict} |")
    return lines


def main(source: Path) -> None:
    rows = load_tsv(source) if source.is_file() else load_outputs(source)
    print("\n".join(table(decide(rows), rows)))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/digits/seeds.tsv"))
