"""Exact rank tests and their intervals, for outcomes where a failed run is the worst.

A failed run has no FID worth the name, so it enters as +inf: ranks tie every failure at the
worst rank, and no p-value, shift or interval below depends on a value imputed for it.

- Mann–Whitney (unpaired) and Wilcoxon signed-rank (paired): exact permutation p-values over
  the mid-ranks (ties included) where the permutations are few enough to count, the normal
  approximation with its tie correction above that.
- Hodges–Lehmann shift with the distribution-free interval that inverts the same test (Moses
  unpaired, Tukey's Walsh averages paired). At few runs the test's distribution is coarse: the
  interval is the widest the design has, and its exact confidence (e.g. 90 % at 3 + 3) is
  returned with it, never a nominal 95 % it does not have.
- P(improvement) = P(variant run < reference run) + ½ P(tie) over all pairs (Agarwal et al.
  2021), with a stratified bootstrap interval.
"""

from __future__ import annotations

import math
from functools import lru_cache
from itertools import combinations

import numpy as np
from scipy import stats as st

EXACT_MOST = 200_000   # permutations counted exactly; past that, the normal approximation
EPS = 1e-9


def _diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a - b where both failed (inf - inf) is a tie, 0, not NaN."""
    with np.errstate(invalid="ignore"):
        d = a - b
    return np.where(np.isnan(d), 0.0, d)


# ---- null distributions without ties (for p-values, intervals and power) ----------------------

@lru_cache(maxsize=256)
def u_counts(n1: int, n0: int) -> np.ndarray:
    """How many of the C(n1 + n0, n1) splits give U = 0, 1, ..., n1·n0 (no ties): the Gaussian
    binomial coefficient, prod (1 - q^(n0+i)) / (1 - q^i)."""
    poly = np.zeros(n1 * n0 + 1)
    poly[0] = 1.0
    for i in range(1, n1 + 1):          # multiply by (1 - q^(n0 + i))
        shifted = np.zeros_like(poly)
        shifted[n0 + i:] = poly[:len(poly) - n0 - i]
        poly = poly - shifted
    for i in range(1, n1 + 1):          # divide by (1 - q^i): a running sum with stride i
        for k in range(i, len(poly)):
            poly[k] += poly[k - i]
    return np.rint(poly)


@lru_cache(maxsize=256)
def w_counts(m: int) -> np.ndarray:
    """How many of the 2^m sign patterns give W+ = 0, 1, ..., m(m+1)/2: prod (1 + q^i)."""
    poly = np.zeros(m * (m + 1) // 2 + 1)
    poly[0] = 1.0
    for i in range(1, m + 1):
        poly[i:] = poly[i:] + poly[:-i].copy()
    return poly


def _two_sided(counts: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """P(|S - E| >= |s - E|) for statistics s under the null counts over S = 0, 1, ..."""
    values = np.arange(len(counts))
    centre = (len(counts) - 1) / 2
    dev = np.abs(values - centre)
    order = np.argsort(dev)
    tail = np.cumsum(counts[order][::-1])[::-1] / counts.sum()   # P(dev >= dev[order[j]])
    obs = np.abs(np.asarray(observed, float) - centre)
    j = np.searchsorted(dev[order], obs - EPS)
    return np.where(j < len(order), tail[np.minimum(j, len(order) - 1)], 0.0)


def min_p(n1: int, n0: int | None = None) -> float:
    """The smallest two-sided p the exact test can give (no ties): 2 / C(n1 + n0, n1) unpaired,
    2 / 2^n paired (`n0` None)."""
    if n0 is None:
        return min(1.0, 2.0 / 2 ** n1) if n1 else 1.0
    return min(1.0, 2.0 / math.comb(n1 + n0, n1)) if n1 and n0 else 1.0


# ---- tests ---------------------------------------------------------------------------------

@lru_cache(maxsize=64)
def _splits(n: int, k: int) -> np.ndarray:
    return np.array(list(combinations(range(n), k)), dtype=np.int64)


def mann_whitney(a, b) -> tuple[float, float]:
    """U (pairs where a > b, ties ½) and the two-sided p, exact over the mid-ranks."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    n1, n0 = len(a), len(b)
    if not n1 or not n0:
        return math.nan, math.nan
    both = np.concatenate([a, b])
    ranks = st.rankdata(both)
    u = float(ranks[:n1].sum() - n1 * (n1 + 1) / 2)
    if len(np.unique(ranks)) == len(ranks):
        return u, float(_two_sided(u_counts(n1, n0), [u])[0])
    if len(np.unique(both)) == 1:
        return u, 1.0
    if math.comb(n1 + n0, n1) <= EXACT_MOST:
        sums = ranks[_splits(n1 + n0, n1)].sum(axis=1) - n1 * (n1 + 1) / 2
        centre = n1 * n0 / 2
        return u, float(np.mean(np.abs(sums - centre) >= abs(u - centre) - EPS))
    return u, float(st.mannwhitneyu(a, b, method="asymptotic").pvalue)


def signed_rank(d) -> tuple[float, float]:
    """W+ (the rank sum of the positive differences; zeros dropped) and the two-sided p, exact
    over the mid-ranks of |d| for up to 17 nonzero differences."""
    d = np.asarray(d, float)
    d = d[d != 0]
    m = len(d)
    if not m:
        return math.nan, 1.0
    ranks = st.rankdata(np.abs(d))
    w = float(ranks[d > 0].sum())
    if len(np.unique(ranks)) == m:
        return w, float(_two_sided(w_counts(m), [w])[0])
    centre = ranks.sum() / 2
    if m <= 17:
        signs = (np.arange(2 ** m)[:, None] >> np.arange(m)) & 1
        sums = signs @ ranks
        return w, float(np.mean(np.abs(sums - centre) >= abs(w - centre) - EPS))
    sd = math.sqrt((ranks ** 2).sum() / 4)
    return w, float(2 * st.norm.sf(abs(w - centre) / sd))


# ---- shifts and their intervals -------------------------------------------------------------

def _order_interval(values: np.ndarray, counts: np.ndarray, confidence: float):
    """[v_(k), v_(M+1-k)] of the sorted values, k the largest with 1 - 2 P(S <= k-1) >= confidence
    under `counts`; at k = 1 when none reaches it. Returns (low, high, its exact confidence)."""
    values = np.sort(values)
    cdf = np.cumsum(counts) / counts.sum()
    level = 1 - 2 * cdf                                  # level[k - 1] for k = 1, 2, ...
    ks = [k for k in range(1, len(values) // 2 + 1) if level[k - 1] >= confidence - EPS]
    k = ks[-1] if ks else 1
    return float(values[k - 1]), float(values[len(values) - k]), float(level[k - 1])


def hodges_lehmann(a, b, confidence: float = 0.95) -> tuple[float, float, float, float]:
    """The median of all a_i - b_j, and Moses's interval (exact without ties): (shift, low,
    high, the interval's exact confidence)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if not len(a) or not len(b):
        return (math.nan,) * 4
    d = _diff(a[:, None], b[None, :]).ravel()
    return (float(np.median(d)), *_order_interval(d, u_counts(len(a), len(b)), confidence))


def hodges_lehmann_paired(d, confidence: float = 0.95) -> tuple[float, float, float, float]:
    """The median of the Walsh averages (d_i + d_j) / 2, i <= j, and Tukey's interval."""
    d = np.asarray(d, float)
    if not len(d):
        return (math.nan,) * 4
    i, j = np.triu_indices(len(d))
    with np.errstate(invalid="ignore"):
        walsh = (d[i] + d[j]) / 2
    walsh = np.where(np.isnan(walsh), 0.0, walsh)
    return (float(np.median(walsh)), *_order_interval(walsh, w_counts(len(d)), confidence))


def p_improvement(a, b, resamples: int = 2000, confidence: float = 0.95,
                  seed: int = 0) -> tuple[float, float, float]:
    """P(a run < b run) + ½ P(tie) over all pairs, with the stratified bootstrap's percentile
    interval (each arm resampled on its own; seeded)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if not len(a) or not len(b):
        return (math.nan,) * 3

    def prob(x, y):
        return (x[..., :, None] < y[..., None, :]).mean((-1, -2)) + 0.5 * (
            x[..., :, None] == y[..., None, :]).mean((-1, -2))

    rng = np.random.default_rng(seed)
    boot = prob(a[rng.integers(0, len(a), (resamples, len(a)))],
                b[rng.integers(0, len(b), (resamples, len(b)))])
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(boot, [tail, 100 - tail])
    return float(prob(a, b)), float(low), float(high)


# ---- power of the test actually run -------------------------------------------------------------

def rank_power(shift: float, n1: int, n0: int | None = None, alpha: float = 0.05,
               draws: int = 4000, seed: int = 0) -> float:
    """Power of the exact two-sided Mann–Whitney (Wilcoxon signed-rank when `n0` is None) to
    find a shift of `shift` SDs between normal arms (paired: of the per-seed differences, in
    units of their SD), simulated with fixed draws (common random numbers: monotone in shift)."""
    rng = np.random.default_rng(seed)
    if n0 is None:   # normal draws have no ties: ranks by a double argsort
        d = rng.standard_normal((draws, n1)) + shift
        ranks = np.abs(d).argsort(1).argsort(1) + 1
        w = np.where(d > 0, ranks, 0).sum(1)
        p = _two_sided(w_counts(n1), w)
    else:
        x = rng.standard_normal((draws, n1 + n0))
        x[:, :n1] += shift
        ranks = x.argsort(1).argsort(1) + 1
        p = _two_sided(u_counts(n1, n0), ranks[:, :n1].sum(1) - n1 * (n1 + 1) / 2)
    return float(np.mean(p < alpha - EPS))


@lru_cache(maxsize=256)
def rank_detectable(n1: int, n0: int | None = None, alpha: float = 0.05,
                    target: float = 0.8) -> float:
    """The smallest shift, in SDs, the exact rank test finds with power `target`; inf when the
    test can never reach `alpha` at this n."""
    if min_p(n1, n0) >= alpha - EPS:
        return math.inf
    lo, hi = 0.0, 1.0
    while rank_power(hi, n1, n0, alpha) < target:
        hi *= 2
        if hi > 1e3:
            return math.inf
    for _ in range(20):   # to 1e-6 of the starting bracket
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if rank_power(mid, n1, n0, alpha) < target else (lo, mid)
    return hi
