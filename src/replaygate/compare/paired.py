"""Paired comparison of one metric between baseline and candidate (pure; no I/O).

Which method is used for which metric (design.md "Statistics"):

* pass/fail metrics with one sample per case (0/1 per case): exact McNemar p-value, Tango score
  interval of the difference; one-sample questions about the candidate use exact binomial tests.
* pass/fail metrics with repeats (per-case fractions): the same counting methods on effective
  counts (samples over the design effect of the clustering, stats.effective_counts), so the
  interval stays honest at 0% and 100% where a bootstrap of the fractions collapses to a point.
* per-case means (scores, latency.mean, tokens, cost): paired bootstrap-t (studentized) interval
  of the mean difference and its bootstrap p-value (the same quantity as the interval); the
  ratio candidate/baseline of the means by a bootstrap-t of its logarithm (relative tolerances).
* quantiles over samples (latency.pXX, ttft.pXX): bootstrap of the candidate/baseline ratio,
  resampling whole paired cases; a warning when there are too few samples for the quantile.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import stats as sps

from ..metrics import MetricSeries
from . import stats as st


@dataclass
class MetricComparison:
    name: str
    kind: str
    higher_is_better: bool
    n: int  # paired cases that have a value on both sides
    baseline: float | None = None
    candidate: float | None = None
    delta: float | None = None
    ci: tuple[float, float] | None = None
    ratio: float | None = None
    ratio_ci: tuple[float, float] | None = None
    p_value: float | None = None
    test: str = ""
    interval: str = ""
    mde: float | None = None
    warnings: list[str] = field(default_factory=list)
    repeats: dict | None = None
    unknown: str | None = None
    thin: str | None = None  # why the evidence is too thin for a gate to decide
    # what the gates need (not serialised)
    binary: bool = False
    n01: int = 0  # baseline fail -> candidate pass
    n10: int = 0  # baseline pass -> candidate fail
    k_cand: int = 0  # candidate passes (binary)
    expand_n: int | None = None  # n for the expanded percentile (means); None for quantiles
    counts: st.EffectiveCounts | None = None  # rates: decided by counting methods on these
    boot: st.PairedMeanReps | None = None  # means: bootstrap-t replicates
    diff_reps: np.ndarray | None = None
    ratio_reps: np.ndarray | None = None
    cand_reps: np.ndarray | None = None
    case_base: np.ndarray | None = None  # per paired case values (means/rates)
    case_cand: np.ndarray | None = None

    def to_dict(self) -> dict:
        out = {"baseline": self.baseline, "candidate": self.candidate, "delta": self.delta,
               "ci": list(self.ci) if self.ci else None, "p_value": self.p_value, "mde": self.mde,
               "n": self.n, "test": self.test, "interval": self.interval, "kind": self.kind,
               "higher_is_better": self.higher_is_better,
               "ratio": self.ratio, "ratio_ci": list(self.ratio_ci) if self.ratio_ci else None,
               "warnings": list(self.warnings)}
        if self.repeats is not None:
            out["repeats"] = self.repeats
        if self.unknown is not None:
            out["unknown"] = self.unknown
        return json_safe(out)


def json_safe(obj):
    """Plain JSON values: numpy scalars become Python ones; NaN/inf (not JSON) become null."""
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def _ratio(c: float, b: float) -> float | None:
    return c / b if b not in (0, None) and math.isfinite(b) and math.isfinite(c) else None


def align(series: MetricSeries, to_paired: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sample values and their paired-case index (dropping samples of unpaired cases)."""
    pc = to_paired[series.case_index]
    keep = (pc >= 0) & np.isfinite(series.values)
    return series.values[keep], pc[keep]


def repeats_info(b: MetricSeries, c: MetricSeries, to_b: np.ndarray, to_c: np.ndarray,
                 n: int) -> dict | None:
    """Within-case variance and standard-error reduction due to repeats, per side."""
    out = {}
    for side, s, m in (("baseline", b, to_b), ("candidate", c, to_c)):
        if s.case_index.size <= s.n_cases and np.all(np.bincount(s.case_index, minlength=1) <= 1):
            continue  # one sample per case: nothing to cluster
        v, ci = align(s, m)
        cl = st.clustering(v, ci, n)
        if cl is None or cl.mean_repeats <= 1.0:
            continue
        out[side] = {"mean_repeats": cl.mean_repeats, "within_case_variance": cl.within_var,
                     "between_case_variance": cl.between_var, "se": cl.se,
                     "se_one_repeat": cl.se_single, "se_reduction": cl.se_reduction}
    return out or None


def compare_means(names: list[str], base: dict[str, MetricSeries], cand: dict[str, MetricSeries],
                  to_b: np.ndarray, to_c: np.ndarray, n: int, weights: st.CaseWeights | None,
                  alpha: float) -> dict[str, MetricComparison]:
    """Rates, means and totals: one bootstrap pass over all of them (shared case weights)."""
    out: dict[str, MetricComparison] = {}
    cols, owners = [], []
    for name in names:
        b, c = base[name], cand[name]
        mc = MetricComparison(name, b.kind, b.higher_is_better, 0)
        out[name] = mc
        for s in (b, c):
            if s.note:
                mc.warnings.append(f"{'baseline' if s is b else 'candidate'}: {s.note}")
        if b.unknown or c.unknown:
            mc.unknown = b.unknown or c.unknown
            continue
        bv = _per_paired(b, to_b, n)
        cv = _per_paired(c, to_c, n)
        both = np.isfinite(bv) & np.isfinite(cv)
        bv, cv = np.where(both, bv, np.nan), np.where(both, cv, np.nan)
        mc.n = int(both.sum())
        mc.case_base, mc.case_cand = bv, cv
        if mc.n == 0:
            mc.warnings.append("no paired case has a value on both sides")
            continue
        scale = mc.n if b.kind == "total" else 1.0
        mc.baseline = float(np.nanmean(bv) * scale)
        mc.candidate = float(np.nanmean(cv) * scale)
        mc.delta = mc.candidate - mc.baseline
        mc.ratio = _ratio(mc.candidate, mc.baseline)
        mc.repeats = repeats_info(b, c, to_b, to_c, n) if b.kind != "total" else None
        if b.kind == "rate":
            rb, rc = _per_paired_counts(b, to_b, n), _per_paired_counts(c, to_c, n)
            if np.all(rb[both] == 1) and np.all(rc[both] == 1):
                _binary(mc, bv[both], cv[both], alpha)
            else:
                _rate_with_repeats(mc, bv[both], cv[both], rb[both], rc[both], alpha)
        else:
            cols.append((bv, cv))
            owners.append((mc, scale))
    if cols and weights is not None:
        reps = st.paired_mean_reps(weights, np.stack([c[0] for c in cols], axis=1),
                                   np.stack([c[1] for c in cols], axis=1))
        for (mc, scale), r in zip(owners, reps):
            _bootstrap(mc, r, scale, alpha)
    return out


def _per_paired(s: MetricSeries, to_paired: np.ndarray, n: int) -> np.ndarray:
    per_case = s.case_sums() if s.kind == "total" else s.case_means()
    if s.kind == "total":
        has = np.bincount(s.case_index[np.isfinite(s.values)], minlength=s.n_cases) > 0
        per_case = np.where(has, per_case, np.nan)
    out = np.full(n, np.nan)
    ok = to_paired >= 0
    out[to_paired[ok]] = per_case[ok]
    return out


def _per_paired_counts(s: MetricSeries, to_paired: np.ndarray, n: int) -> np.ndarray:
    """Samples with a value per paired case."""
    _, pc = align(s, to_paired)
    return np.bincount(pc, minlength=n)


def _binary(mc: MetricComparison, b: np.ndarray, c: np.ndarray, alpha: float) -> None:
    mc.binary = True
    mc.n01 = int(np.sum((b == 0) & (c == 1)))
    mc.n10 = int(np.sum((b == 1) & (c == 0)))
    mc.k_cand = int(np.sum(c == 1))
    mc.counts = st.EffectiveCounts(float(mc.n), float(mc.n01), float(mc.n10), 1.0,
                                   float(mc.k_cand), float(mc.n), 1.0)
    mc.p_value = st.mcnemar_exact(mc.n01, mc.n10)
    mc.test = "mcnemar_exact"
    mc.ci = st.tango_interval(mc.n01, mc.n10, mc.n, alpha, st.CONTINUITY)
    mc.interval = "tango_score_continuity_corrected"
    _proportion_mde(mc, (mc.n01 + mc.n10) / mc.n, mc.n, alpha)


def _rate_with_repeats(mc: MetricComparison, b, c, rb, rc, alpha: float) -> None:
    e = st.effective_counts(b, c, rb, rc)
    mc.counts = e
    mc.ci = st.tango_interval(e.gains, e.losses, e.n, alpha, st.CONTINUITY)
    mc.interval = "tango_score_effective_n"
    z = st.tango_z(e.gains, e.losses, e.n, 0.0, st.CONTINUITY)
    mc.p_value = float(min(1.0, 2 * sps.norm.sf(abs(z))))
    mc.test = "score_test_effective_n"
    _proportion_mde(mc, (e.gains + e.losses) / e.n, e.n, alpha)


def _proportion_mde(mc: MetricComparison, flip: float, n: float, alpha: float) -> None:
    mde = st.mde_paired_proportion(flip, n, alpha)
    if mde >= 1.0:
        # no change of a share (at most 100 points) could be detected with 80% power
        mc.warnings.append(f"{n:.3g} effective paired samples: too few to detect any change with 80% power")
        mc.mde = None
    else:
        mc.mde = mde


def _exp(x: float) -> float:
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


def _bootstrap(mc: MetricComparison, r: st.PairedMeanReps, scale: float, alpha: float) -> None:
    mc.boot = r
    mc.expand_n = mc.n
    mc.diff_reps = r.diff_reps * scale
    mc.ratio_reps = r.ratio_reps
    mc.cand_reps = r.cand_reps * scale
    diff = r.diff.scaled(scale)
    mc.ci = diff.interval(alpha)
    mc.interval = "paired_bootstrap_t"
    if mc.ratio is not None:
        if r.log_ratio is not None:
            lo, hi = r.log_ratio.interval(alpha)
            # a bootstrap-t bound of a few cases can exceed exp's range: an unbounded ratio, not a crash
            mc.ratio_ci = (_exp(lo), _exp(hi))
        else:
            mc.ratio_ci = st.percentile_interval(mc.ratio_reps, alpha, mc.n)
    # the p-value tests the quantity the interval is about: the mean difference
    mc.p_value = diff.p_two_sided(0.0)
    mc.test = "bootstrap_t"
    mc.mde = st.mde_normal(diff.se, alpha)
    if mc.n < st.MIN_BOOTSTRAP_N:
        # a bootstrap of a handful of cases can be degenerate (e.g. 3 equal differences give a
        # zero-width interval): report it, but let no gate decide on it
        mc.thin = f"only {mc.n} paired cases (a bootstrap decision needs {st.MIN_BOOTSTRAP_N})"
        mc.warnings.append(mc.thin + ": the interval is rough")


def compare_quantiles(names: list[str], base: dict[str, MetricSeries], cand: dict[str, MetricSeries],
                      to_b: np.ndarray, to_c: np.ndarray, n: int, weights: st.CaseWeights | None,
                      alpha: float) -> dict[str, MetricComparison]:
    """Quantile metrics over the same sample values (e.g. latency.p50..p99): one sort and one
    pass over the bootstrap weights for all of them."""
    first_b, first_c = base[names[0]], cand[names[0]]
    vb, cb = align(first_b, to_b)
    vc, cc = align(first_c, to_c)
    # only cases measured on both sides, so the two quantiles describe the same cases
    both = (np.bincount(cb, minlength=n) > 0) & (np.bincount(cc, minlength=n) > 0)
    vb, cb = vb[both[cb]], cb[both[cb]]
    vc, cc = vc[both[cc]], cc[both[cc]]
    qs = [base[m].q for m in names]
    out = {m: MetricComparison(m, "quantile", first_b.higher_is_better, int(both.sum())) for m in names}
    if both.sum() == 0 or weights is None:
        for mc in out.values():
            mc.warnings.append("no paired case has a value on both sides")
        return out
    all_rb, all_rc = st.weighted_quantile_reps_many(weights, [(vb, cb, qs), (vc, cc, qs)])
    for k, (m, q) in enumerate(zip(names, qs)):
        mc = out[m]
        mc.baseline = st.quantile_point(vb, q)
        mc.candidate = st.quantile_point(vc, q)
        mc.delta = mc.candidate - mc.baseline
        mc.ratio = _ratio(mc.candidate, mc.baseline)
        need = st.quantile_min_n(q)
        if min(vb.size, vc.size) < need:
            mc.thin = (f"{min(vb.size, vc.size)} samples are too few for p{round(q * 100)} "
                       f"(need about {need}: at least 5 beyond the quantile)")
            mc.warnings.append(mc.thin + "; the interval is unreliable and gates on it cannot decide")
        rb, rc = all_rb[:, k], all_rc[:, k]
        mc.diff_reps = rc - rb
        with np.errstate(invalid="ignore", divide="ignore"):
            mc.ratio_reps = rc / rb
        mc.cand_reps = rc
        mc.ci = st.percentile_interval(mc.diff_reps, alpha)
        mc.interval = "paired_case_bootstrap_percentile"
        if mc.ratio is not None:
            mc.ratio_ci = st.percentile_interval(mc.ratio_reps, alpha)
            with np.errstate(invalid="ignore", divide="ignore"):
                mc.p_value = st.bootstrap_p_two_sided(np.log(mc.ratio_reps), 0.0)
        else:
            mc.p_value = st.bootstrap_p_two_sided(mc.diff_reps, 0.0)
        mc.test = "bootstrap_ratio"
        mc.mde = st.mde_normal(float(np.nanstd(mc.diff_reps)), alpha)
    return out
