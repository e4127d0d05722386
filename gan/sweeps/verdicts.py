"""The one verdict rule: `gan.report` and `tools/digits_table.py` both decide with `analyse`.

A run that fails is an outcome, not a number, so two questions get two tests and two Holm
families (DESIGN.md §10, "Statistics under failure"):

- **Does it fail more often?** k of n failed runs, a Clopper–Pearson interval, Fisher's exact
  test against the reference, Holm over the failure family.
- **Is it better when it trains?** An exact rank test with every failure tied at the worst rank
  (Mann–Whitney unpaired, Wilcoxon signed-rank paired), Holm over the quality family; with it
  the Hodges–Lehmann shift and its interval at the Bonferroni level 1 − α/m (simultaneous, so an
  interval that excludes 0 always sits beside a verdict), and P(improvement). Welch on the
  successful runs alone stays as a column, said to be conditional on success and unadjusted.

A failure enters as +inf: ranks tie it at the worst, so changing the value a failure would have
been imputed at changes no p-value and no verdict. Where no outcome of the design could pass
Holm (3 + 3 runs: the smallest exact p is 0.10), the verdict says so: "screen: n = 3 vs 3 cannot
reach p < 0.05 by ranks", not "can't tell".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import stats as st

from gan.sweeps import ranks
from gan.sweeps.stats import ALPHA, Comparison, holm, welch

FAIL = math.inf
BOOTSTRAP_FROM = 10   # runs per arm from which P(improvement) gets its bootstrap interval
# Coverage of P(improvement)'s stratified bootstrap 95 % interval, measured (normal arms, shift
# 1 SD, 1000 draws; tests/test_verdicts.py re-measures it): below 10 runs it is too short.
BOOTSTRAP_COVERAGE = {3: 0.70, 5: 0.88, 10: 0.94}


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The exact binomial interval for k of n."""
    if not n:
        return math.nan, math.nan
    tail = (1 - confidence) / 2
    low = st.beta.ppf(tail, k, n - k + 1) if k else 0.0
    high = st.beta.ppf(1 - tail, k + 1, n - k) if k < n else 1.0
    return float(low), float(high)


def fisher(k1: int, n1: int, k0: int, n0: int) -> float:
    """Two-sided Fisher's exact p for k1 of n1 against k0 of n0 failures."""
    if not n1 or not n0:
        return math.nan
    return float(st.fisher_exact([[k1, n1 - k1], [k0, n0 - k0]]).pvalue)


def fisher_min_p(n1: int, n0: int) -> float:
    """The smallest p Fisher's test can give at these sizes (every run of one arm failed, none
    of the other)."""
    return fisher(n1, n1, 0, n0) if n1 and n0 else 1.0


@dataclass
class Arm:
    """One group's outcomes, one per finished run: the metric, or FAIL. `seeds` (paired arms):
    the seed of each outcome."""
    values: list[float]
    seeds: list = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def failures(self) -> int:
        return sum(not math.isfinite(v) for v in self.values)

    @property
    def successes(self) -> list[float]:
        return [v for v in self.values if math.isfinite(v)]


@dataclass
class Analysis:
    """One variant against the reference: both families, the intervals, the verdict."""
    n: int = 0
    failures: int = 0
    ref_n: int = 0
    ref_failures: int = 0
    fail_low: float = math.nan
    fail_high: float = math.nan
    fail_p: float = math.nan
    fail_p_holm: float = math.nan
    test: str = ""                 # "Mann–Whitney" | "Wilcoxon (paired)"
    p: float = math.nan
    p_holm: float = math.nan
    direction: int = 0             # -1: the variant's runs rank lower (better); +1 higher
    smallest_p: float = math.nan   # the smallest p the rank test can give at this n
    shift: float = math.nan        # Hodges–Lehmann, variant minus reference
    shift_low: float = math.nan
    shift_high: float = math.nan
    shift_level: float = math.nan  # the interval's exact confidence (simultaneous)
    p_improve: float = math.nan
    p_improve_low: float = math.nan
    p_improve_high: float = math.nan
    r: float = math.nan            # the seed pairs' correlation (paired only)
    conditional: Comparison = field(default_factory=Comparison)  # Welch on successes
    verdict: str = ""


def quality_test(a: Arm, b: Arm, paired: bool, level: float) -> Analysis:
    """The rank test, the shift with its interval at `level`, P(improvement), Welch."""
    out = Analysis(n=a.n, failures=a.failures, ref_n=b.n, ref_failures=b.failures)
    x, y = np.array(a.values, float), np.array(b.values, float)
    if paired:
        d = ranks._diff(x, y)
        w, out.p = ranks.signed_rank(d)
        nonzero = int(np.count_nonzero(d))
        out.direction = int(np.sign(w - nonzero * (nonzero + 1) / 4)) if nonzero else 0
        out.test, out.smallest_p = "Wilcoxon (paired)", ranks.min_p(a.n)
        out.shift, out.shift_low, out.shift_high, out.shift_level = \
            ranks.hodges_lehmann_paired(d, level)
        both = np.isfinite(x) & np.isfinite(y)
        if both.sum() >= 3 and np.std(x[both]) > 0 and np.std(y[both]) > 0:
            out.r = float(np.corrcoef(x[both], y[both])[0, 1])
    else:
        u, out.p = ranks.mann_whitney(x, y)
        out.direction = int(np.sign(u - a.n * b.n / 2))
        out.test, out.smallest_p = "Mann–Whitney", ranks.min_p(a.n, b.n)
        out.shift, out.shift_low, out.shift_high, out.shift_level = \
            ranks.hodges_lehmann(x, y, level)
    out.p_improve, low, high = ranks.p_improvement(x, y)
    if min(a.n, b.n) >= BOOTSTRAP_FROM:
        out.p_improve_low, out.p_improve_high = low, high
    out.conditional = welch(a.successes, b.successes)
    return out


def pairs_reach(n_pairs: int, m: int = 1, alpha: float = ALPHA) -> bool:
    """Whether the signed-rank test on `n_pairs` pairs can pass Holm's first step over `m`
    comparisons (α/m; 6 pairs and up for one comparison). Below that a paired design is
    compared by Mann–Whitney, which gets there with fewer runs (3 + 4 for one): decided by the
    design's n and m, never by the data."""
    return ranks.min_p(n_pairs) < alpha / max(m, 1)


def reachable(smallest: list[float], alpha: float = ALPHA) -> list[bool]:
    """Which comparisons Holm could reject at all: Holm on the smallest p each test can give
    (the best case: Holm is monotone in every p)."""
    return [p < alpha for p in holm(smallest)]


def analyse(pairs: list[tuple[Arm, Arm, bool]], vs: str = "baseline",
            alpha: float = ALPHA) -> list[Analysis]:
    """Each (variant, reference, paired) in one failure family and one quality family. The
    quality family is skipped (verdicts from failures alone) for a reference with fewer than 2
    successful runs."""
    m = len(pairs)
    level = 1 - alpha / max(m, 1)
    out = []
    for a, b, paired in pairs:
        result = quality_test(a, b, paired, level) if len(b.successes) >= 2 else Analysis(
            n=a.n, failures=a.failures, ref_n=b.n, ref_failures=b.failures)
        result.fail_low, result.fail_high = clopper_pearson(a.failures, a.n)
        result.fail_p = fisher(a.failures, a.n, b.failures, b.n)
        out.append(result)
    for r, p in zip(out, holm([r.p for r in out])):
        r.p_holm = p
    for r, p in zip(out, holm([r.fail_p for r in out])):
        r.fail_p_holm = p
    can_rank = reachable([r.smallest_p if math.isfinite(r.p) else 1.0 for r in out], alpha)
    can_fail = reachable([fisher_min_p(r.n, r.ref_n) for r in out], alpha)
    for r, rank_ok, fail_ok in zip(out, can_rank, can_fail):
        r.verdict = decide(r, rank_ok, fail_ok, m, vs, alpha)
    return out


WORDS = {"baseline": ("better", "worse", "can't tell"),
         "best": ("better than the top-ranked", "worse than the best",
                  "not distinguishable from the best")}


def decide(r: Analysis, rank_ok: bool, fail_ok: bool, m: int, vs: str = "baseline",
           alpha: float = ALPHA) -> str:
    """The verdict from the two families' Holm-adjusted p-values."""
    better, worse, unsure = WORDS[vs]
    parts = []
    if r.p_holm < alpha:
        parts.append(better if r.direction < 0 else worse)
    if r.fail_p_holm < alpha:
        parts.append("fails more often" if r.failures / r.n > r.ref_failures / r.ref_n
                     else "fails less often")
    if parts:
        return ", ".join(parts)
    sizes = f"n = {r.n} vs {r.ref_n}"
    if not r.n:
        return "no verdict (no finished run)"
    if not math.isfinite(r.p):  # the reference has fewer than 2 successful runs
        if r.failures == r.ref_failures == 0:
            return "no verdict (the reference has fewer than 2 successful runs)"
        return (f"screen: {sizes} cannot reach p < {alpha:g} on failures (Fisher)"
                if not fail_ok else "can't tell on failures; no quality verdict")
    if not rank_ok:
        bar = alpha if r.smallest_p >= alpha else alpha / m
        return f"screen: {sizes} cannot reach p < {bar:.2g} by ranks"
    return unsure


def power(sd: float, n1: int, n0: int | None, m: int, alpha: float = ALPHA) -> tuple[float, float]:
    """The shift the family's rank test finds with power 0.8 at Holm's first step (α/m) and at
    its last (α), in the metric's units at spread `sd`; inf where the test cannot get there."""
    if not sd > 0:
        return math.nan, math.nan
    return (sd * ranks.rank_detectable(n1, n0, alpha / max(m, 1)),
            sd * ranks.rank_detectable(n1, n0, alpha))
