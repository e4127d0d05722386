"""The statistics behind `gan.report`'s verdicts: Welch and paired t comparisons, Holm's
correction, bounded intervals for bounded metrics, and the design's power.

Why these: seeds of one variant are few (3 to 10) and their spreads differ from variant to
variant (a recipe near its edge spreads far more), so a comparison must not assume equal
variances (Welch). A report compares many variants with one reference, so the p-values are
adjusted for the number of comparisons (Holm: valid under any dependence, and never less
powerful than Bonferroni). A Student-t interval on a metric bounded to [0, 1] can leave the
range at n = 3 (precision 0.67 ± 1.43): bounded metrics get the seeds' range at n <= 3 and
the t interval clipped to the range above. The verdicts themselves are rank tests:
`gan.sweeps.verdicts`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

ALPHA, POWER = 0.05, 0.8


def finite(values) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(v)]


def t_interval(values, confidence: float = 0.95) -> tuple[float, float]:
    """Mean and half-width of the Student-t interval; (x, inf) for one value, (nan, nan) for
    none: one seed says nothing about the spread."""
    xs = finite(values)
    if not xs:
        return math.nan, math.nan
    mean = sum(xs) / len(xs)
    if len(xs) == 1:
        return mean, math.inf
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1))
    return mean, float(stats.t.ppf((1 + confidence) / 2, len(xs) - 1)) * sd / math.sqrt(len(xs))


def bounded_interval(values, low: float, high: float,
                     confidence: float = 0.95) -> tuple[float, float]:
    """An interval for the mean of a metric bounded to [low, high]: the seeds' min–max at
    n <= 3 (the values themselves: no coverage is claimed for it), else the Student-t interval
    clipped to the range. Clipping never drops the true mean, which lies inside the range, so
    the clipped interval keeps the t interval's coverage (a percentile bootstrap labelled 95 %
    covered 80 / 84 / 90 % at n = 4 / 5 / 10)."""
    xs = finite(values)
    if not xs:
        return math.nan, math.nan
    if len(xs) <= 3:
        lo, hi = min(xs), max(xs)
    else:
        mean, half = t_interval(xs, confidence)
        lo, hi = mean - half, mean + half
    return max(lo, low), min(hi, high)


@dataclass
class Comparison:
    """`a` minus `b`: the difference of means, its 95 % interval, the raw and adjusted
    p-values, and the test (`Welch` or `paired`)."""
    diff: float = math.nan
    low: float = math.nan
    high: float = math.nan
    p: float = math.nan
    test: str = ""
    p_adjusted: float = math.nan


def welch(a, b, confidence: float = 0.95) -> Comparison:
    """Welch's two-sample t: unequal variances, Welch–Satterthwaite degrees of freedom."""
    a, b = finite(a), finite(b)
    if len(a) < 2 or len(b) < 2:
        return Comparison(test="Welch")
    va, vb = np.var(a, ddof=1) / len(a), np.var(b, ddof=1) / len(b)
    diff = float(np.mean(a) - np.mean(b))
    se = math.sqrt(va + vb)
    if se == 0:  # both groups constant: a difference is certain, none is none
        return Comparison(diff, diff, diff, 0.0 if diff else 1.0, "Welch")
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = float(stats.t.ppf((1 + confidence) / 2, df)) * se
    p = float(2 * stats.t.sf(abs(diff) / se, df))
    return Comparison(diff, diff - half, diff + half, p, "Welch")


def paired(a, b, confidence: float = 0.95) -> Comparison:
    """Paired t on the per-seed differences `a[i] - b[i]` (same seed: same init and data
    order, so the seed's luck cancels)."""
    d = [x - y for x, y in zip(a, b) if math.isfinite(x) and math.isfinite(y)]
    if len(d) < 2:
        return Comparison(test="paired")
    diff, sd = float(np.mean(d)), float(np.std(d, ddof=1))
    if sd == 0:
        return Comparison(diff, diff, diff, 0.0 if diff else 1.0, "paired")
    se = sd / math.sqrt(len(d))
    half = float(stats.t.ppf((1 + confidence) / 2, len(d) - 1)) * se
    p = float(2 * stats.t.sf(abs(diff) / se, len(d) - 1))
    return Comparison(diff, diff - half, diff + half, p, "paired")


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjustment (NaN stays NaN and does not count as a comparison)."""
    order = sorted((p, i) for i, p in enumerate(pvalues) if math.isfinite(p))
    m, running = len(order), 0.0
    out = [math.nan] * len(pvalues)
    for rank, (p, i) in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out


def pooled_sd(samples: list[list[float]]) -> float:
    """The within-group SD pooled over groups with 2 or more values."""
    groups = [finite(s) for s in samples]
    groups = [g for g in groups if len(g) >= 2]
    dof = sum(len(g) - 1 for g in groups)
    if not dof:
        return math.nan
    return math.sqrt(sum((len(g) - 1) * np.var(g, ddof=1) for g in groups) / dof)


def power(delta: float, sd: float, n: int, alpha: float = ALPHA) -> float:
    """Power of the two-sided two-sample Student t test (pooled, equal n and spreads: not
    Welch), n per group, to find a true difference `delta` at spread `sd` (noncentral t). The
    verdicts use rank tests: their power is `gan.sweeps.ranks.rank_power`."""
    if n < 2 or not sd > 0:
        return math.nan
    df = 2 * n - 2
    nc = delta / (sd * math.sqrt(2 / n))
    crit = stats.t.ppf(1 - alpha / 2, df)
    upper, lower = stats.nct.sf(crit, df, nc), stats.nct.cdf(-crit, df, nc)
    # far out the noncentral t's tails underflow to NaN: there the upper tail is all of it
    # (nc > crit) or nothing, and the lower tail nothing (a NaN read as "enough power" made
    # `detectable` stop short: 32.6 instead of 35.6 at alpha 0.05/19)
    upper = upper if math.isfinite(upper) else float(nc > crit)
    lower = lower if math.isfinite(lower) else 0.0
    return float(upper + lower)


def detectable(sd: float, n: int, alpha: float = ALPHA, target: float = POWER) -> float:
    """The smallest difference found with power `target` at n seeds per group and spread sd."""
    if n < 2 or not sd > 0:
        return math.nan
    lo, hi = 0.0, sd
    while power(hi, sd, n, alpha) < target:
        hi *= 2
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if power(mid, sd, n, alpha) < target else (lo, mid)
    return hi


def seeds_needed(delta: float, sd: float, alpha: float = ALPHA, target: float = POWER,
                 most: int = 10_000) -> int | None:
    """Seeds per group for power `target` against a difference `delta`; None past `most`."""
    if not (delta > 0 and sd > 0):
        return None
    n = 2
    while power(delta, sd, n, alpha) < target:
        n += 1
        if n > most:
            return None
    return n
