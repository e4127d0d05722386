"""The tutorial study's verdicts, re-decided by `gan.report`'s rule (`gan.sweeps.verdicts`).

    python tools/study_verdicts.py [docs/study/report.csv] [docs/study/confirm/report.csv]

The 3-seed study's run folders are gone, and its old report kept per group only the mean FID and
the half-width of its 95 % t interval. The rule needs no more to decide it: every comparison
is 3 runs against 3, where the smallest exact Mann–Whitney p is 0.10 and the smallest Fisher p
(3 of 3 failed against 0 of 3) is 0.10, so no outcome of that design could pass Holm at
α = 0.05, whatever the values. Welch from the summaries (SD = half-width × √n / t(0.975, n−1))
stays as a column, unadjusted and Holm-adjusted, as the previous re-decision printed it.

The 10-seed confirmation kept every run's FID (`fid_seeds` in confirm/report.csv): it is
re-decided from those values, paired (Wilcoxon) where its report paired and the
initialisation agrees (`pretrained_d` starts from another D: Mann–Whitney).
"""

from __future__ import annotations

import csv
import math
import sys
from pathlib import Path

from scipy import stats as st

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gan.sweeps import ranks  # noqa: E402
from gan.sweeps.stats import holm  # noqa: E402
from gan.sweeps.verdicts import Arm, analyse, fisher_min_p, power, reachable  # noqa: E402

ALPHA = 0.05


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
                       "sd": sd, "old": row["vs baseline"]})
    return groups


def study(groups: list[dict]) -> list[str]:
    base = next(g for g in groups if g["variant"] == "baseline")
    others = [g for g in groups if g is not base]
    welch = [float(st.ttest_ind_from_stats(g["mean"], g["sd"], g["n"], base["mean"], base["sd"],
                                           base["n"], equal_var=False).pvalue) for g in others]
    rank_ok = reachable([ranks.min_p(g["n"], base["n"]) for g in others])
    fail_ok = reachable([fisher_min_p(g["n"], base["n"]) for g in others])
    lines = ["| variant | seeds ok/div | mean FID | verdict, intervals overlap | Welch p (Holm), "
             "the previous rule | verdict now |", "|---|---|---|---|---|---|"]
    for g, p, ph, r_ok, f_ok in zip(others, welch, holm(welch), rank_ok, fail_ok):
        assert not r_ok and not f_ok, g  # 3 + 3: no outcome can pass Holm
        old_welch = ("better" if g["mean"] < base["mean"] else "worse") if ph < ALPHA \
            else "can't tell"
        lines.append(f"| {g['variant']} | {g['ok']}/{g['diverged']} | {g['mean']:.1f} | "
                     f"{g['old']} | {p:.2g} ({ph:.2g}): {old_welch} | screen: n = {g['n']} vs "
                     f"{base['n']} cannot reach p < 0.05 by ranks or on failures |")
    return lines


def seeds(cell: str) -> list[float]:
    return [float(item.split(":", 1)[1]) for item in cell.split()]


def confirmation(path: Path) -> list[str]:
    rows = list(csv.DictReader(path.open()))
    base = next(r for r in rows if variant(r) == "baseline")
    others = [r for r in rows if r is not base]
    ref = seeds(base["fid_seeds"])
    pairs = [(Arm(seeds(r["fid_seeds"])), Arm(ref),
              r["test"] == "paired" and "init_from" not in r["what differs"]) for r in others]
    results = analyse(pairs)
    lines = ["| variant | old test, Holm p, verdict | rank test | p | Holm p | shift "
             "[simultaneous] | P(improvement) [bootstrap] | verdict now |",
             "|---|---|---|---|---|---|---|---|"]
    for r, res in zip(others, results):
        test = res.test + (f", r = {res.r:.2f}" if math.isfinite(res.r) else "")
        lines.append(
            f"| {variant(r)} | {r['test']}, {float(r['p_holm']):.2g}, {r['verdict']} | {test} | "
            f"{res.p:.2g} | {res.p_holm:.2g} | {res.shift:+.1f} [{res.shift_low:+.1f}, "
            f"{res.shift_high:+.1f}] ({100 * res.shift_level:.3g} %) | {res.p_improve:.2f} "
            f"[{res.p_improve_low:.2f}, {res.p_improve_high:.2f}] | {res.verdict} |")
    sd = math.sqrt(sum(st.tvar(seeds(r["fid_seeds"])) for r in rows) / len(rows))
    first, last = power(sd, 10, 10, len(others))
    lines += ["", f"Power of the confirmation's Mann–Whitney (10 + 10 runs, pooled SD {sd:.2f} "
              f"FID, simulated): {first:.1f} FID at Holm's first step (α/{len(others)}), "
              f"{last:.1f} at its last (α)."]
    return lines


def main(argv: list[str]) -> None:
    paths = [Path(a) for a in argv] or [Path("docs/study/report.csv"),
                                        Path("docs/study/confirm/report.csv")]
    print("\n".join(study(load(paths[0]))))
    if len(paths) > 1:
        print()
        print("\n".join(confirmation(paths[1])))


if __name__ == "__main__":
    main(sys.argv[1:])
