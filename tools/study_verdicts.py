"""The tutorial study's verdicts, re-decided from its summary numbers (docs/study/report.csv).

The study's run folders are gone, so this works from what the old report kept per group: the
mean FID and the half-width of its 95 % Student-t interval over n seeds. The SD comes back as
half-width * sqrt(n) / t(0.975, n - 1). Each variant is then compared with the baseline by
Welch's t-test from those summaries, the 19 p-values adjusted by Holm, and the verdict taken at
alpha 0.05, as `gan.report` now does. A group with diverged seeds is decided by the new rule
that a failure is the worst outcome: every seed of an all-diverged group sits at the worst FID,
so it is worse than a healthy baseline whatever its measured numbers; a group with some
diverged seeds is marked, since its per-seed values (which the new report ranks by median)
are not in the summary.

    python tools/study_verdicts.py [docs/study/report.csv] [--markdown]
"""

from __future__ import annotations

import csv
import math
import sys
from pathlib import Path

from scipy import stats as st

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gan.sweeps.stats import detectable, holm, seeds_needed  # noqa: E402

BASELINE_SD_CONFIRMATION = 5.07  # the default recipe's own 3-seed confirmation (README)


def variant(row: dict) -> str:
    return row["what differs"].rsplit("variant=", 1)[-1].split(",")[0].strip()


def load(path: Path) -> list[dict]:
    groups = []
    for row in csv.DictReader(path.open()):
        n = int(row["ok"]) + int(row["diverged"])  # the seeds that wrote final metrics
        half = float(row["fid_ci95"])
        sd = half * math.sqrt(n) / st.t.ppf(0.975, n - 1) if n > 1 else math.nan
        groups.append({"variant": variant(row), "n": n, "ok": int(row["ok"]),
                       "diverged": int(row["diverged"]), "mean": float(row["fid_mean"]),
                       "half": half, "sd": sd, "old": row["vs baseline"]})
    return groups


def decide(groups: list[dict]) -> dict:
    base = next(g for g in groups if g["variant"] == "baseline")
    others = [g for g in groups if g is not base]
    for g in others:
        test = st.ttest_ind_from_stats(g["mean"], g["sd"], g["n"], base["mean"], base["sd"],
                                       base["n"], equal_var=False)
        g["p"] = float(test.pvalue)
    for g, p in zip(others, holm([g["p"] for g in others])):
        g["p_holm"] = p
        if g["diverged"] == g["n"]:
            g["new"] = "worse (every seed diverged: the worst outcome)"
        elif g["diverged"]:
            verdict = "worse" if p < 0.05 and g["mean"] > base["mean"] else "can't tell"
            g["new"] = f"{verdict} ({g['diverged']} of {g['n']} diverged: counted worst)"
        elif p < 0.05:
            g["new"] = "better" if g["mean"] < base["mean"] else "worse"
        else:
            g["new"] = "can't tell"
    base.update(p=math.nan, p_holm=math.nan, new="baseline")
    healthy = [g for g in groups if g["diverged"] == 0 and g["variant"] != "cgan"]
    # pooled over the healthy unconditional groups: the spread of seeds of one recipe
    sd = math.sqrt(sum((g["n"] - 1) * g["sd"] ** 2 for g in healthy)
                   / sum(g["n"] - 1 for g in healthy))
    return {"base": base, "pooled_sd": sd}


def power_lines(sd: float, n: int = 3) -> list[str]:
    lines = []
    for label, s in (("pooled over the study's healthy groups", sd),
                     ("the baseline's own 3-seed confirmation", BASELINE_SD_CONFIRMATION)):
        delta = detectable(s, n)
        need = seeds_needed(delta / 2, s)
        lines.append(f"- SD {s:.2f} FID ({label}): at n = {n} seeds per group the smallest "
                     f"difference detected with power 0.8 at α = 0.05 (two-sided Welch/t, "
                     f"before Holm) is **{delta:.1f} FID**; half of it ({delta / 2:.1f}) needs "
                     f"**{need} seeds** per group.")
    for n10 in (10,):
        delta = detectable(BASELINE_SD_CONFIRMATION, n10)
        lines.append(f"- The confirmation design (10 seeds per group, SD "
                     f"{BASELINE_SD_CONFIRMATION}): detects {delta:.1f} FID.")
    return lines


def table(groups: list[dict]) -> list[str]:
    lines = ["| variant | seeds ok/div | mean FID | SD | old verdict (intervals overlap) | "
             "Welch p | Holm p | new verdict |", "|---|---|---|---|---|---|---|---|"]
    for g in groups:
        p = "–" if math.isnan(g["p"]) else f"{g['p']:.3g}"
        ph = "–" if math.isnan(g["p_holm"]) else f"{g['p_holm']:.3g}"
        changed = " **(changed)**" if g["old"] != g["new"].split(" (")[0] else ""
        lines.append(f"| {g['variant']} | {g['ok']}/{g['diverged']} | {g['mean']:.1f} | "
                     f"{g['sd']:.2f} | {g['old']} | {p} | {ph} | {g['new']}{changed} |")
    return lines


def main(argv: list[str]) -> None:
    path = Path(next((a for a in argv if not a.startswith("--")), "docs/study/report.csv"))
    groups = load(path)
    decided = decide(groups)
    print("\n".join(table(groups)))
    print()
    print("\n".join(power_lines(decided["pooled_sd"])))


if __name__ == "__main__":
    main(sys.argv[1:])
