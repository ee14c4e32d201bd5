"""Paired statistics for comparing two runs (pure numpy/scipy, no I/O).

Conventions used throughout:

* Data are paired by case. With repeats, samples are averaged within a case first (cluster by
  case); standard errors are never computed as if repeats were independent cases.
* ``alpha`` is always the ONE-sided level. A gate at confidence 0.95 uses a two-sided 95%
  interval, i.e. ``alpha = 0.025`` on each side.
* Bootstrap replicates for every metric of a comparison come from ONE set of case weights
  (:class:`CaseWeights`), so baseline and candidate stay paired and metrics stay comparable.

References:
  Tango T. (1998) Equivalence test and confidence interval for the difference in proportions for
    the paired-sample design. Stat Med 17:891-908 (score interval for paired proportions;
    recommended for small n and rare discordance by Fagerland, Lydersen & Laake (2014),
    Stat Med 33:2850-2875).
  Hesterberg T. (2015) What teachers should know about the bootstrap. Am Stat 69:371-386
    ("expanded percentile" interval: fixes the narrowness of percentile intervals for small n).
  Hanley J.A., MacGibbon B. (2006) Creating non-parametric bootstrap samples using Poisson
    frequencies. Comput Methods Programs Biomed 83:57-62 (Poisson bootstrap for large n).
  Miller E. (2024) Adding error bars to evals (clustered standard errors, paired differences).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.fft
from scipy import optimize, stats

POWER = 0.80
DEFAULT_RESAMPLES = 10_000
# Up to this many cases the weights are classic multinomial resamples; above it the cheaper
# cyclic-shift Poisson bootstrap of CaseWeights is used (the two agree closely there).
EXACT_MAX_N = 500
# Fewer paired cases than this and a bootstrap interval cannot carry a gate decision.
MIN_BOOTSTRAP_N = 10


# ----------------------------------------------------------------------------- pass/fail tests

def mcnemar_exact(n01: int, n10: int) -> float:
    """Two-sided exact McNemar p-value: binomial test of the discordant pairs against 1/2."""
    m = int(n01) + int(n10)
    if m == 0:
        return 1.0
    return float(stats.binomtest(min(n01, n10), m, 0.5).pvalue)


# Continuity correction used by the gates: with few discordant pairs the plain score statistic
# is liberal one-sided (exact size up to 0.041 at nominal 0.025 for n=300, a true drop equal to
# the tolerance and no gains); shrinking |n01 - n10 - n*delta0| by 1 keeps the exact size at or
# below nominal on the grid n in {30, 100, 300}, tolerance in {0, 0.02, 0.05}, flip rate <= 0.1
# (tests/test_stats.py checks this by exact enumeration).
CONTINUITY = 1.0


def tango_z(n01: int, n10: int, n: int, delta0: float, cc: float = 0.0) -> float:
    """Tango's score statistic for H0: p(cand) - p(base) = delta0 (paired 2x2 table).

    n01: cases failing in baseline and passing in candidate; n10: the reverse; n: all pairs;
    cc: continuity correction subtracted from the absolute numerator (0 = Tango's original).
    The nuisance parameter (the probability of a 1->0 flip) is its MLE under the constraint,
    the positive root of 2n q^2 + W q - n10 d (1-d) = 0 with W = -n01 - n10 + (2n - n01 + n10) d.
    """
    b, c, d = float(n01), float(n10), float(delta0)
    w = -b - c + (2.0 * n - b + c) * d
    q = (-w + math.sqrt(max(w * w + 8.0 * n * c * d * (1.0 - d), 0.0))) / (4.0 * n)
    var = n * (2.0 * q + d * (1.0 - d))
    num = b - c - n * d
    num = math.copysign(max(abs(num) - cc, 0.0), num)
    if var <= 0.0:
        # Only reachable at d = observed difference with no discordance: no evidence either way.
        return 0.0 if abs(num) < 1e-12 else math.copysign(math.inf, num)
    return num / math.sqrt(var)


def tango_interval(n01: int, n10: int, n: int, alpha: float = 0.025, cc: float = 0.0) -> tuple[float, float]:
    """Tango's score interval for the paired difference p(cand) - p(base), each side at level
    ``alpha`` (two-sided coverage 1 - 2 alpha). Keeps coverage for small n and rare flips."""
    if n <= 0:
        return (math.nan, math.nan)
    z = stats.norm.ppf(1.0 - alpha)
    est = (n01 - n10) / n
    eps = 1e-12

    def f(d: float, target: float) -> float:
        return tango_z(n01, n10, n, d, cc) - target

    lo = -1.0 if f(-1.0 + eps, z) <= 0 else optimize.brentq(f, -1.0 + eps, est, args=(z,), xtol=1e-12)
    hi = 1.0 if f(1.0 - eps, -z) >= 0 else optimize.brentq(f, est, 1.0 - eps, args=(-z,), xtol=1e-12)
    return (float(lo), float(hi))


def tango_p_greater(n01: int, n10: int, n: int, delta0: float, cc: float = CONTINUITY) -> float:
    """One-sided p-value of H0: difference <= delta0 against H1: difference > delta0."""
    return float(stats.norm.sf(tango_z(n01, n10, n, delta0, cc)))


def paired_fail_probability(n: int, p01: float, p10: float, delta0: float, alpha: float = 0.025,
                            cc: float = CONTINUITY) -> float:
    """Exact probability, over every paired 2x2 table of n cases, that the one-sided score test
    finds the pass-rate difference below ``delta0`` (a gate "fell by more than -delta0" fails).
    p01 / p10: true shares of cases that flip fail->pass / pass->fail. With delta0 equal to the
    true difference p01 - p10 this is the test's size; with a true drop beyond, its power."""
    total = 0.0
    bs = np.arange(n + 1)
    pb = stats.binom.pmf(bs, n, p01)
    for b in bs[pb > 1e-12]:
        cs = np.arange(n - b + 1)
        pc = stats.binom.pmf(cs, n - b, p10 / (1 - p01)) if p01 < 1 else (cs == 0).astype(float)
        z = np.array([tango_z(int(b), int(c), n, delta0, cc) for c in cs])
        total += pb[b] * float(np.sum(pc[stats.norm.cdf(z) <= alpha]))
    return total


def clopper_pearson(k: float, n: float, alpha: float = 0.025) -> tuple[float, float]:
    """Exact binomial interval, each side at level alpha, through its beta-quantile form, so
    that it also takes the non-integer effective counts of clustered samples (Korn & Graubard
    1998); for whole k and n it is scipy's ``binomtest(...).proportion_ci(method="exact")``."""
    if n <= 0:
        return (math.nan, math.nan)
    k = min(max(float(k), 0.0), float(n))
    lo = 0.0 if k <= 0 else float(stats.beta.ppf(alpha, k, n - k + 1))
    hi = 1.0 if k >= n else float(stats.beta.ppf(1 - alpha, k + 1, n - k))
    return (lo, hi)


def binom_p_greater(k: float, n: float, p0: float) -> float:
    """Exact one-sided p-value of H0: rate <= p0 against rate > p0: P(X >= k | p0), written as
    a beta tail so that effective (non-integer) counts work too; inverts :func:`clopper_pearson`."""
    if n <= 0:
        return 1.0
    k = min(max(float(k), 0.0), float(n))
    p0 = min(max(p0, 0.0), 1.0)
    return 1.0 if k <= 0 else float(stats.beta.cdf(p0, k, n - k + 1))


def binom_p_less(k: float, n: float, p0: float) -> float:
    """Exact one-sided p-value of H0: rate >= p0 against rate < p0: P(X <= k | p0)."""
    if n <= 0:
        return 1.0
    k = min(max(float(k), 0.0), float(n))
    p0 = min(max(p0, 0.0), 1.0)
    return 1.0 if k >= n else float(stats.beta.sf(p0, k + 1, n - k))


# ----------------------------------------------------------------------------- rates with repeats
#
# With repeats a case's pass (or error) rate is a fraction, and a bootstrap of those fractions
# collapses at the boundary: 10 cases x 2 repeats without an error resample to the interval
# [0, 0], which "shows" an error rate below 1% from 20 samples. Instead the counting methods of
# one sample per case are kept and fed effective counts: the samples divided by the design
# effect of the clustering (Kish), estimated from the spread of the per-case values and bounded
# to [1, repeats]. Where the data cannot estimate it (no event at all) the worst case is taken:
# repeats count as one sample per case. With one sample per case the effective counts are the
# counts, so these reduce to exact Clopper-Pearson / Tango.

@dataclass
class EffectiveCounts:
    """Paired rate difference with repeats as an (effective) paired 2x2 table."""
    n: float  # effective paired samples
    gains: float  # effective fail -> pass (candidate higher) count (n01 of the 2x2 table)
    losses: float  # effective pass -> fail count (n10)
    deff: float  # design effect used
    k_cand: float  # effective candidate events, for one-sample questions about the candidate
    n_cand: float  # effective candidate samples
    deff_cand: float


# Fewer events (or discordant samples) than this and the design effect is not estimated but
# taken at its worst case, the repeats: a variance estimated from a handful of events is low
# exactly when the rate looks low, which made an estimated design effect pass a noninferior
# "errors.rate max 0.01" gate at a true 1% in 4.1% of runs (200 cases x 3 repeats; nominal
# 2.5%). With the worst case the variance bound p (1 - p) / n holds for any clustering, since
# a per-case rate lies in [0, 1].
MIN_EVENTS_FOR_DEFF = 10


def _harmonic_repeats(samples: np.ndarray) -> float:
    # the mean of per-case rates weighs cases equally, so under independence its variance is
    # p (1 - p) / (n * r) with r the harmonic mean of the samples per case
    return float(samples.size / np.sum(1.0 / samples)) if samples.size else 1.0


def design_effect(values: np.ndarray, samples: np.ndarray) -> float:
    """Kish's design effect of the mean of per-case rates ``values`` (``samples`` samples per
    case): its observed variance across cases over the binomial one, bounded to [1, repeats];
    the upper bound with fewer than MIN_EVENTS_FOR_DEFF events (or non-events)."""
    n = values.size
    r = _harmonic_repeats(samples)
    if n < 2 or r <= 1.0:
        return 1.0
    p = float(values.mean())
    if min(p, 1.0 - p) * n * r < MIN_EVENTS_FOR_DEFF:
        return r
    var = float(values.var(ddof=1)) / n
    return min(max(var / (p * (1 - p) / (n * r)), 1.0), r)


def effective_counts(base: np.ndarray, cand: np.ndarray, rb: np.ndarray, rc: np.ndarray) -> EffectiveCounts:
    """Per-case rates of baseline and candidate (paired) and their sample counts, as effective
    counts. The paired difference d of a case lies in [-1, 1], so Tango's variance
    (gains + losses - d^2) / n bounds its variance; the design effect is the observed variance
    of the mean difference over that bound taken at sample level."""
    n = base.size
    d = cand - base
    r = _harmonic_repeats(np.minimum(rb, rc).astype(float))
    gains, losses = float(np.maximum(d, 0).mean()), float(np.maximum(-d, 0).mean())
    dbar = gains - losses
    v0 = (gains + losses - dbar * dbar) / (n * r)
    if n < 2 or r <= 1.0:
        deff = 1.0
    elif v0 <= 0 or (gains + losses) * n * r < MIN_EVENTS_FOR_DEFF:
        deff = r
    else:
        deff = min(max(float(d.var(ddof=1)) / n / v0, 1.0), r)
    n_eff = n * r / deff
    deff_c = design_effect(cand, rc.astype(float))
    n_c = n * _harmonic_repeats(rc.astype(float)) / deff_c
    return EffectiveCounts(n_eff, gains * n_eff, losses * n_eff, deff, float(cand.mean()) * n_c, n_c, deff_c)


# ----------------------------------------------------------------------------- power

def mde_normal(se: float, alpha: float, power: float = POWER) -> float:
    """Smallest true effect a one-sided level-alpha test with standard error se detects with the
    given power: (z_{1-alpha} + z_power) * se."""
    return float((stats.norm.ppf(1 - alpha) + stats.norm.ppf(power)) * se)


def mde_paired_proportion(flip_rate: float, n: int, alpha: float, power: float = POWER) -> float:
    """MDE of a paired pass-rate difference when a share ``flip_rate`` of cases flip by noise.

    A true drop d adds d to the discordance, so Var(d_hat) = (flip + d - d^2)/n; solving
    d = k * sqrt(...) with k = z_{1-alpha} + z_power gives the positive root below. It stays
    positive with no observed flips (then ~k^2/n) instead of claiming a zero MDE.
    """
    if n <= 0:
        return math.nan
    k2 = (stats.norm.ppf(1 - alpha) + stats.norm.ppf(power)) ** 2 / n
    root = (k2 + math.sqrt(k2 * k2 + 4 * (1 + k2) * k2 * flip_rate)) / (2 * (1 + k2))
    return float(root + CONTINUITY / n)  # the gates' continuity correction costs 1/n


# ----------------------------------------------------------------------------- bootstrap intervals

def expanded_alpha(alpha: float, n: int) -> float:
    """Hesterberg's expanded percentile level: the tail level whose normal quantile matches
    sqrt(n/(n-1)) * t_{n-1}, so the percentile interval is as wide as a t interval for small n."""
    if n < 2:
        return alpha
    z = math.sqrt(n / (n - 1)) * stats.t.ppf(1 - alpha, n - 1)
    return float(stats.norm.sf(z))


def unexpand_alpha(alpha_e: float, n: int) -> float:
    """Inverse of :func:`expanded_alpha` (maps a bootstrap tail share back to the nominal scale)."""
    if n < 2:
        return alpha_e
    t = stats.norm.isf(min(max(alpha_e, 1e-300), 1.0)) / math.sqrt(n / (n - 1))
    return float(stats.t.sf(t, n - 1))


def percentile_interval(reps: np.ndarray, alpha: float, n: int | None = None) -> tuple[float, float]:
    """Percentile interval of bootstrap replicates, each side at level alpha; expanded
    (Hesterberg) when n is given."""
    r = reps[np.isfinite(reps)]
    if r.size == 0:
        return (math.nan, math.nan)
    a = expanded_alpha(alpha, n) if n else alpha
    lo, hi = np.quantile(r, [a, 1 - a])
    return (float(lo), float(hi))


def bootstrap_p_greater(reps: np.ndarray, null: float, n: int | None = None) -> float:
    """One-sided p-value of H0: effect <= null from replicates (test inversion of the percentile
    interval: the lower bound at level p lies exactly at ``null``)."""
    r = reps[np.isfinite(reps)]
    if r.size == 0:
        return 1.0
    share = float(np.mean(r <= null))
    return unexpand_alpha(share, n) if n else share


def bootstrap_p_two_sided(reps: np.ndarray, null: float) -> float:
    r = reps[np.isfinite(reps)]
    if r.size == 0:
        return 1.0
    # (k + 1) / (B + 1): a bootstrap never shows a p-value below its resolution
    k = min(np.sum(r <= null), np.sum(r >= null))
    return float(min(1.0, 2 * (k + 1) / (r.size + 1)))


# ----------------------------------------------------------------------------- repeats

@dataclass
class Clustering:
    """How repeats within a case contribute to the noise of a per-case mean."""
    n_cases: int
    mean_repeats: float
    within_var: float | None  # pooled variance of samples around their case mean
    between_var: float  # variance of the per-case means
    se: float  # standard error of the mean of case means
    se_single: float  # estimated standard error had each case been sampled once
    se_reduction: float  # 1 - se / se_single: what the repeats bought


def clustering(values: np.ndarray, case_index: np.ndarray, n_cases: int) -> Clustering | None:
    """Within-case variance and the standard-error reduction due to repeats for one run."""
    ok = np.isfinite(values)
    v, ci = values[ok], case_index[ok]
    cnt = np.bincount(ci, minlength=n_cases).astype(float)
    has = cnt > 0
    m = int(has.sum())
    if m < 2:
        return None
    means = np.bincount(ci, weights=v, minlength=n_cases)[has] / cnt[has]
    resid = v - (np.bincount(ci, weights=v, minlength=n_cases) / np.maximum(cnt, 1))[ci]
    dof = float((cnt[has] - 1).sum())
    within = float((resid ** 2).sum() / dof) if dof > 0 else None
    between = float(means.var(ddof=1))
    r = float(m / (1.0 / cnt[has]).sum())  # harmonic mean repeats
    se = math.sqrt(between / m)
    single = between + (within or 0.0) * (1 - 1 / r)
    se1 = math.sqrt(max(single, 0.0) / m)
    return Clustering(m, r, within, between, se, se1, 1 - se / se1 if se1 > 0 else 0.0)


# ----------------------------------------------------------------------------- resampling engine

class CaseWeights:
    """B bootstrap weight vectors over n cases, drawn once and shared by every metric.

    * n <= EXACT_MAX_N: classic bootstrap, multinomial case counts (stored n x B, uint8).
    * larger n: Poisson bootstrap (weights ~ Poisson(1), Hanley & MacGibbon 2006) where the
      replicates are cyclic shifts of a few independent Poisson vectors laid over the cases in a
      random order. Each replicate is marginally an exact Poisson-bootstrap replicate; two
      replicates of the same vector are correlated only through the circular autocorrelation of
      the randomly ordered case values at their lag difference, O(1/sqrt(n)). Linear statistics
      of all B replicates then cost one FFT per column instead of O(B n), which is what makes
      10,000 resamples of 100,000 cases fast; quantiles only need the weights of the samples near
      the quantile (:meth:`gather`), which for consecutive lags are contiguous slices.
    """

    def __init__(self, n: int, n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0):
        if n < 1:
            raise ValueError("need at least one case to resample")
        self.n = n
        self.B = int(n_resamples)
        rng = np.random.default_rng(seed)
        # (the dense count matrix is n x B bytes: keep it under ~50 MB even for large B)
        self.exact = n <= EXACT_MAX_N and n * self.B <= 50_000_000
        if self.exact:
            counts = np.empty((n, self.B), dtype=np.uint8)
            step = max(1, (1 << 18) // n)
            for s in range(0, self.B, step):
                rows = min(step, self.B - s)
                idx = rng.integers(0, n, size=(rows, n)) + (np.arange(rows) * n)[:, None]
                counts[:, s:s + rows] = np.bincount(idx.ravel(), minlength=rows * n).reshape(rows, n).T
            self._counts = counts
            return
        self.size = scipy.fft.next_fast_len(n, real=True)
        self.pos = rng.permutation(n)  # position of each case on the circle
        groups = max(2, -(-8 * self.B // self.size))
        self.per = -(-self.B // groups)  # consecutive lags per vector
        self.vectors = rng.poisson(1.0, size=(groups, self.size)).astype(np.float64)
        self.start = rng.integers(0, self.size, size=groups)  # first lag of each vector
        # wrapped copies so that pos + lag never needs a modulo when gathering
        wrap = np.concatenate([self.vectors, self.vectors, self.vectors[:, : self.per]], axis=1)
        self._wrapped = wrap.astype(np.uint8)
        self._vec_fft = scipy.fft.rfft(self.vectors, axis=1, workers=_WORKERS)

    def linear(self, cols: np.ndarray) -> np.ndarray:
        """sum_i w[b, i] * cols[i, k] for every replicate b: shape (B, k)."""
        cols = np.asarray(cols, dtype=np.float64)
        if cols.ndim == 1:
            cols = cols[:, None]
        k = cols.shape[1]
        if self.exact:
            out = np.empty((self.B, k))
            step = max(1, (1 << 22) // self.n)
            for s in range(0, self.B, step):
                out[s:s + step] = (cols.T @ self._counts[:, s:s + step].astype(np.float64)).T
            return out
        x = np.zeros((k, self.size))
        x[:, self.pos] = cols.T
        xf = np.conj(scipy.fft.rfft(x, axis=1, workers=_WORKERS))
        parts = []
        for g in range(self.vectors.shape[0]):
            corr = scipy.fft.irfft(xf * self._vec_fft[g], n=self.size, axis=1, workers=_WORKERS)
            parts.append(np.take(corr, self.start[g] + np.arange(self.per), axis=1, mode="wrap").T)
        # weights are integers, so exact sums are integers; FFT round-off is ~1e-12 relative
        return np.concatenate(parts)[: self.B]

    def gather(self, case_idx: np.ndarray, rows: slice = slice(None)) -> np.ndarray:
        """Integer weights of the given cases in replicates ``rows``: shape
        (len(case_idx), number of rows), uint8 (case-major, so sums over cases are fast)."""
        case_idx = np.asarray(case_idx, dtype=np.int64)
        start, stop, _ = rows.indices(self.B)
        if self.exact:
            return self._counts[case_idx, start:stop]
        p = self.pos[case_idx]
        parts = []
        for g in range(start // self.per, (stop - 1) // self.per + 1):
            a, b = max(start - g * self.per, 0), min(stop - g * self.per, self.per)
            windows = np.lib.stride_tricks.sliding_window_view(self._wrapped[g], b - a)
            parts.append(windows[self.start[g] + a + p])
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)


_WORKERS = 2  # scipy.fft threads


def weighted_means(weights: CaseWeights, values: np.ndarray) -> np.ndarray:
    """Bootstrap replicates of the mean of each column of ``values`` (n, k) over the cases where
    that column is finite: shape (B, k). Columns are centred first so the sums stay exact."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim == 1:
        v = v[:, None]
    mask = np.isfinite(v)
    centre = np.array([v[mask[:, j], j].mean() if mask[:, j].any() else 0.0 for j in range(v.shape[1])])
    num = np.where(mask, v - centre, 0.0)
    # most columns share one mask (every case measured): resample each distinct mask once
    distinct: dict[bytes, int] = {}
    which = [distinct.setdefault(np.packbits(mask[:, j]).tobytes(), len(distinct)) for j in range(v.shape[1])]
    firsts = [which.index(u) for u in range(len(distinct))]
    sums = weights.linear(np.concatenate([num, mask[:, firsts].astype(np.float64)], axis=1))
    k = v.shape[1]
    with np.errstate(invalid="ignore", divide="ignore"):
        return centre + sums[:, :k] / sums[:, k + np.asarray(which)]


def _linear_sums(weights: CaseWeights, cols: np.ndarray) -> np.ndarray:
    """weights.linear, with the FFT path's round-off (~1e-12 of the column's scale) snapped to
    an exact 0 where the true sum is 0: a resample holding only zero-cost cases must give a mean
    of exactly 0, never -1e-18, or a ratio over it turns into +-1e16."""
    scale = np.abs(cols).sum(axis=0)
    live = np.flatnonzero(scale > 0)  # an all-zero column (e.g. no spread) sums to 0 for free
    if live.size == cols.shape[1]:
        sums = weights.linear(cols)
    else:
        sums = np.zeros((weights.B, cols.shape[1]))
        if live.size:
            sums[:, live] = weights.linear(cols[:, live])
    if not weights.exact:
        sums[np.abs(sums) <= 1e-9 * scale] = 0.0
    return sums


@dataclass
class Studentized:
    """Bootstrap-t (studentized) replicates of one estimate: est, its standard error, and
    t*_b = (est*_b - est) / se*_b. The interval [est - t*_(1-a) se, est - t*_(a) se] follows
    the skewness of the statistic (second-order accurate; Efron & Tibshirani 1993, ch. 12.5;
    Hall 1992), which the percentile interval gets backwards: with right-skewed paired
    differences (timeouts, retries, long answers) a percentile interval of the mean sits too far
    right, and a significant gate on it raised 3x its nominal false alarms at n = 10-20."""
    est: float
    se: float
    t: np.ndarray

    def _t(self) -> np.ndarray:
        return self.t[~np.isnan(self.t)]

    def interval(self, alpha: float) -> tuple[float, float]:
        t = self._t()
        if not math.isfinite(self.est) or t.size == 0:
            return (math.nan, math.nan)
        if self.se == 0.0:
            return (self.est, self.est)  # identical differences on every case: no spread at all
        lo_q, hi_q = np.quantile(t, [alpha, 1.0 - alpha], method="inverted_cdf")
        with np.errstate(invalid="ignore"):
            return (float(self.est - hi_q * self.se), float(self.est - lo_q * self.se))

    def p_greater(self, null: float) -> float:
        """One-sided p-value of H0: value <= null (inverts the interval's lower bound)."""
        t = self._t()
        if t.size == 0 or not math.isfinite(self.est):
            return 1.0
        if self.se == 0.0:
            return 0.0 if self.est > null else 1.0
        t0 = (self.est - null) / self.se
        return float((np.sum(t >= t0) + 1) / (t.size + 1))

    def p_less(self, null: float) -> float:
        """One-sided p-value of H0: value >= null (inverts the upper bound)."""
        t = self._t()
        if t.size == 0 or not math.isfinite(self.est):
            return 1.0
        if self.se == 0.0:
            return 0.0 if self.est < null else 1.0
        t0 = (self.est - null) / self.se
        return float((np.sum(t <= t0) + 1) / (t.size + 1))

    def p_two_sided(self, null: float = 0.0) -> float:
        return min(1.0, 2.0 * min(self.p_greater(null), self.p_less(null)))

    def scaled(self, k: float) -> "Studentized":
        return Studentized(self.est * k, self.se * k, self.t)


def _studentize(est_b: np.ndarray, var_b: np.ndarray, w: np.ndarray, est, se) -> np.ndarray:
    """t* = (est*_b - est) / se*_b, elementwise (arrays broadcast: replicates x columns)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        se_b = np.sqrt(np.maximum(var_b, 0.0) / w)
        dev = est_b - est
        t = dev / se_b
    # a resample without spread: no deviation is no evidence (0); any deviation is unbounded
    flat = ~np.isfinite(t)
    if flat.any():
        d = np.nan_to_num(dev[flat])
        t[flat] = np.where(d == 0.0, 0.0, np.copysign(np.inf, d))
    t[np.isnan(est_b) | (w <= 0)] = np.nan
    return t


def _no_round_off(se: np.ndarray, size: np.ndarray) -> np.ndarray:
    return np.where(se <= 1e-9 * size, 0.0, se)


@dataclass
class PairedMeanReps:
    """Bootstrap results for one paired mean metric (see :func:`paired_mean_reps`)."""
    diff: Studentized  # candidate - baseline
    cand: Studentized  # the candidate's own mean (bound gates)
    log_ratio: Studentized | None  # log(candidate / baseline), when both means are > 0
    base_reps: np.ndarray  # replicate means, from uncentred sums
    cand_reps: np.ndarray

    @property
    def diff_reps(self) -> np.ndarray:
        return self.cand_reps - self.base_reps

    @property
    def ratio_reps(self) -> np.ndarray:
        """candidate / baseline per replicate: +inf where the resampled baseline is exactly 0
        and the candidate is not (beyond any relative tolerance), 1 where both are 0."""
        b, c = self.base_reps, self.cand_reps
        with np.errstate(invalid="ignore", divide="ignore"):
            r = c / b
        r[(b == 0) & (c == 0)] = 1.0
        return r


def paired_mean_reps(weights: CaseWeights, base: np.ndarray, cand: np.ndarray) -> list[PairedMeanReps]:
    """Bootstrap-t replicates of the mean difference, the candidate's mean and the log ratio of
    the means, for every column of the paired per-case values ``base``/``cand`` (n, k; NaN where
    a case has no value on both sides). One pass of linear statistics over the shared weights:
    per column the uncentred sums of b and c (means and ratios exactly 0 where the resample's
    values are), and the centred squares and cross product for the replicate variances."""
    b = np.asarray(base, dtype=np.float64)
    c = np.asarray(cand, dtype=np.float64)
    if b.ndim == 1:
        b, c = b[:, None], c[:, None]
    n, k = b.shape
    mask = np.isfinite(b) & np.isfinite(c)
    cnt = mask.sum(axis=0)
    bz, cz = np.where(mask, b, 0.0), np.where(mask, c, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        bm, cm = bz.sum(0) / cnt, cz.sum(0) / cnt
    bt, ct = np.where(mask, b - bm, 0.0), np.where(mask, c - cm, 0.0)
    dt = np.where(mask, (c - b) - (cm - bm), 0.0)
    distinct: dict[bytes, int] = {}
    which = [distinct.setdefault(np.packbits(mask[:, j]).tobytes(), len(distinct)) for j in range(k)]
    firsts = [which.index(u) for u in range(len(distinct))]
    cols = np.concatenate([bz, cz, dt * dt, bt * bt, ct * ct, bt * ct, mask[:, firsts].astype(np.float64)], axis=1)
    sums = _linear_sums(weights, cols)
    sb, sc, sdd, sbb, scc, sbc = (sums[:, q * k:(q + 1) * k] for q in range(6))
    w = np.rint(sums[:, 6 * k + np.asarray(which, dtype=np.int64)])
    m = np.maximum(cnt, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        rb, rc = sb / w, sc / w
        eb, ec = rb - bm, rc - cm  # replicate deviations of the two means
        var_d = sdd / w - (ec - eb) ** 2
        var_b, var_c = sbb / w - eb * eb, scc / w - ec * ec
        cov = sbc / w - eb * ec
    d_hat = cm - bm
    vd0, vb0, vc0 = ((x * x).sum(0) / m for x in (dt, bt, ct))
    cov0 = (bt * ct).sum(0) / m
    # a spread at the level of float round-off is no spread (every case exactly 1.3x): the
    # interval is the point, not noise over noise
    size = np.maximum(np.abs(bm), np.abs(cm))
    se_d = _no_round_off(np.sqrt(vd0 / m), size)
    se_c = _no_round_off(np.sqrt(vc0 / m), np.abs(cm))
    t_d = _studentize(rc - rb, var_d, w, d_hat, se_d).T.copy()
    t_c = _studentize(rc, var_c, w, cm, se_c).T.copy()
    ok = (cnt > 0) & (bm > 0) & (cm > 0)
    t_r = None
    if ok.any():
        with np.errstate(invalid="ignore", divide="ignore"):
            theta = np.log(cm / bm)
            vu0 = vc0 / cm ** 2 + vb0 / bm ** 2 - 2 * cov0 / (bm * cm)
            th_b = np.log(rc) - np.log(rb)  # +inf when the resampled baseline mean is 0
            vu = var_c / rc ** 2 + var_b / rb ** 2 - 2 * cov / (rb * rc)
        se_r = _no_round_off(np.sqrt(np.maximum(vu0, 0.0) / m), np.ones(k))
        t_r = _studentize(th_b, vu, w, theta, se_r)
        inf = np.isinf(th_b)
        t_r[inf] = np.copysign(np.inf, th_b[inf])
        t_r = t_r.T.copy()
    rb_t, rc_t = rb.T.copy(), rc.T.copy()
    out = []
    for j in range(k):
        log_ratio = Studentized(float(theta[j]), float(se_r[j]), t_r[j]) if ok[j] else None
        out.append(PairedMeanReps(Studentized(float(d_hat[j]), float(se_d[j]), t_d[j]),
                                  Studentized(float(cm[j]), float(se_c[j]), t_c[j]),
                                  log_ratio, rb_t[j], rc_t[j]))
    return out


def weighted_quantile_reps(weights: CaseWeights, values: np.ndarray, case_idx: np.ndarray,
                           qs: list[float]) -> np.ndarray:
    """Bootstrap replicates of the q-quantiles (inverted-CDF definition) of sample ``values``,
    each sample carrying the weight of its case: resampling whole cases keeps repeats clustered.
    Returns shape (B, len(qs)). See :func:`weighted_quantile_reps_many`."""
    return weighted_quantile_reps_many(weights, [(values, case_idx, qs)])[0]


def weighted_quantile_reps_many(weights: CaseWeights, series: list[tuple]) -> list[np.ndarray]:
    """:func:`weighted_quantile_reps` for several (values, case_idx, qs) at once, sharing one
    pass of linear statistics.

    For large n only samples within a window of ranks around q*N can hold the quantile in
    practice; the weight below the window is a linear statistic, and replicates where the
    quantile falls outside the window are recomputed over all samples, so results are exact.
    """
    plans, cols = [], []
    for values, case_idx, qs in series:
        order = np.argsort(values, kind="stable")
        v = np.asarray(values, dtype=np.float64)[order]
        c = np.asarray(case_idx, dtype=np.int64)[order]
        N = v.size
        per_case = np.bincount(c, minlength=weights.n).astype(np.float64)
        deff = math.sqrt(per_case.max()) if N else 1.0
        windows = []
        for q in qs:
            half = int(4.5 * math.sqrt(N * q * (1 - q)) * deff) + 32
            windows.append((max(0, int(q * N) - half), min(N, int(q * N) + half + 1)))
        if weights.exact or sum(hi - lo for lo, hi in windows) >= N // 2:
            windows = [(0, N)] * len(qs)  # one scan serves every quantile
        first = len(cols)
        cols.append(per_case)
        for lo, _ in windows:
            cols.append(np.bincount(c[:lo], minlength=weights.n).astype(np.float64))
        plans.append((v, c, qs, windows, first))
    sums = np.rint(weights.linear(np.stack(cols, axis=1))) if cols else None  # integer weights
    return [_quantiles_of(weights, sums, *plan) for plan in plans]


def _quantiles_of(weights: CaseWeights, sums, v, c, qs, windows, first) -> np.ndarray:
    N = v.size
    out = np.full((weights.B, len(qs)), np.nan)
    if N == 0:
        return out
    total = sums[:, first]
    # inverted CDF: the quantile is the first sorted sample whose cumulative weight reaches q*T
    targets = [np.ceil(q * total - 1e-9) for q in qs]
    for lo, hi in dict.fromkeys(windows):
        which = [k for k, w in enumerate(windows) if w == (lo, hi)]
        below = sums[:, first + 1 + which[0]]
        step = max(1, (1 << 22) // max(hi - lo, 1))
        for s in range(0, weights.B, step):
            rows = slice(s, min(s + step, weights.B))
            w = weights.gather(c[lo:hi], rows)
            for k in which:
                out[rows, k] = _first_reaching(w, below[rows], targets[k][rows], v[lo:hi])
    for b, k in zip(*np.nonzero(np.isnan(out) & (total > 0)[:, None])):
        # rare: the quantile fell outside the window for this replicate
        cum = np.cumsum(weights.gather(c, slice(b, b + 1))[:, 0], dtype=np.float64)
        out[b, k] = v[min(int(np.searchsorted(cum, targets[k][b])), N - 1)]
    return out


_BLOCK = 32


def _first_reaching(w: np.ndarray, below: np.ndarray, target: np.ndarray, v: np.ndarray) -> np.ndarray:
    """For integer weights ``w`` (m positions x rows) over sorted values ``v``: per row, the value
    at the first position where ``below`` + cumulative weight reaches ``target`` (NaN when that
    is not inside the window). Cumulative sums over wide arrays are slow, so positions are summed
    per block first and only the crossing block is scanned."""
    m, rows = w.shape
    nb = -(-m // _BLOCK)
    if nb * _BLOCK != m:
        w = np.concatenate([w, np.zeros((nb * _BLOCK - m, rows), dtype=w.dtype)], axis=0)
    blocks = w.reshape(nb, _BLOCK, rows)
    below = below.astype(np.int64)
    cum_blocks = np.cumsum(blocks.sum(axis=1, dtype=np.int64), axis=0) + below[None, :]
    blk = (cum_blocks < target[None, :]).sum(axis=0)
    ok = (blk < nb) & (below < target)
    blk_c = np.minimum(blk, nb - 1)
    r = np.arange(rows)
    start = np.where(blk_c > 0, cum_blocks[np.maximum(blk_c - 1, 0), r], below)
    inner = np.cumsum(blocks[blk_c, :, r], axis=1, dtype=np.int64) + start[:, None]  # (rows, BLOCK)
    pos = blk_c * _BLOCK + (inner < target[:, None]).sum(axis=1)
    ok &= pos < m
    return np.where(ok, v[np.minimum(pos, m - 1)], np.nan)


def quantile_point(values: np.ndarray, q: float) -> float:
    """Sample quantile with the same (inverted-CDF) definition the bootstrap uses."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return math.nan
    return float(np.quantile(v, q, method="inverted_cdf"))


def quantile_min_n(q: float) -> int:
    """Fewest samples for which a q-quantile is more than the maximum: at least 5 samples
    beyond it (p99: 500, p95: 100, p90: 50)."""
    return int(math.ceil(5 / (1 - q)))
