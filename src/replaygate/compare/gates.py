"""Gate rules, decision modes and the Holm correction (pure; no I/O).

A gate is ``{metric, max_decrease | max_increase | min | max, mode?, confidence?}``.
``max_increase`` / ``max_decrease`` take an absolute number or ``"N%"`` (relative to the
baseline: tested on the candidate/baseline ratio; for 0/1 pass/fail metrics converted to an
absolute tolerance with the observed baseline rate). ``min`` / ``max`` bound the candidate's own
value (e.g. ``errors.rate max 0.01``) and use the candidate's one-sample interval.

Every rule is reduced to one "excess" x, larger = worse, and a tolerance tau:
  max_increase: x = change,   max_decrease: x = -change,   max: x = cand - bound (tau 0),
  min: x = bound - cand (tau 0); change is the difference or, for "N%", ratio - 1.
Two one-sided p-values are computed against tau:
  p_beyond  tests H0 "x <= tau" (small when x is surely beyond the tolerance),
  p_within  tests H0 "x >= tau" (small when x is surely within the tolerance).
With alpha = (1 - confidence) / 2 (confidence 0.95 is a two-sided 95% interval):
  point:        fail when the observed x > tau.
  significant:  fail when the interval lies entirely beyond tau (Holm-adjusted p_beyond <= alpha);
                pass when it lies entirely within (p_within <= alpha); otherwise inconclusive,
                which passes (too few cases to tell; the MDE says how large a change could hide).
  noninferior:  pass when the interval lies entirely within tau (p_within <= alpha); fail when
                entirely beyond; otherwise inconclusive, which fails.

Holm across the gates of a run (on by default, ``decision.holm: false`` turns it off):
a run fails when ANY significant gate fails, so the family-wise false-alarm rate over its m
significant gates is controlled with Holm's step-down on the p_beyond values: sort them
p_(1) <= ... <= p_(m); the adjusted value is p~_(k) = max_{j<=k} min(1, (m - j + 1) p_(j)), and
gate (k) fails when p~_(k) <= its alpha. For an interval reading: the k-th smallest p-value is
judged with a one-sided interval at level alpha / (m - k + 1), which every gate reports as
``holm.adjusted_confidence`` together with that interval (step-down: once one gate is not
rejected, later ones are not either, even if their own adjusted interval would be beyond).
Noninferior gates are not in the family: the run passes only when every one of them passes,
an intersection-union test, which needs no adjustment to keep the false-pass rate at alpha.
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from ..errors import ConfigError
from ..metrics import direction
from . import stats as st
from .paired import MetricComparison, json_safe

MODES = ("point", "significant", "noninferior")
RULES = ("max_decrease", "max_increase", "min", "max")
_PCT = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*%\s*$")


@dataclass
class Gate:
    index: int
    metric: str
    rule: str  # one of RULES
    amount: float  # absolute amount, or the fraction for relative rules (10% -> 0.10)
    relative: bool
    mode: str
    confidence: float
    text: str  # e.g. "max_increase 10%"

    @property
    def alpha(self) -> float:
        return (1.0 - self.confidence) / 2.0


def parse_gates(gates: list[dict], decision: dict | None = None) -> list[Gate]:
    """Validate gate rules; raise ConfigError naming the field (``gates[i].x``)."""
    decision = decision or {}
    default_mode = decision.get("mode", "significant")
    default_conf = decision.get("confidence", 0.95)
    if default_mode not in MODES:
        raise ConfigError(f"unknown mode {default_mode!r} (use one of {', '.join(MODES)})", field="decision.mode")
    _check_conf(default_conf, "decision.confidence")
    out = []
    for i, g in enumerate(gates or []):
        where = f"gates[{i}]"
        if not isinstance(g, dict) or not isinstance(g.get("metric"), str):
            raise ConfigError("a gate needs a metric name", field=f"{where}.metric")
        rules = [r for r in RULES if r in g]
        if len(rules) != 1:
            raise ConfigError(f"give exactly one of {', '.join(RULES)}", field=where)
        rule = rules[0]
        raw = g[rule]
        relative = False
        if isinstance(raw, str) and _PCT.match(raw) and rule in ("max_decrease", "max_increase"):
            amount, relative = float(_PCT.match(raw).group(1)) / 100.0, True
        elif isinstance(raw, (int, float)) and not isinstance(raw, bool) and math.isfinite(raw):
            amount = float(raw)
        else:
            raise ConfigError(f"{raw!r} is not a number" + (' or "N%"' if rule.startswith("max_") and rule != "max" else ""),
                              field=f"{where}.{rule}")
        if rule in ("max_decrease", "max_increase") and amount < 0:
            raise ConfigError("a tolerance cannot be negative", field=f"{where}.{rule}")
        mode = g.get("mode", default_mode)
        if mode not in MODES:
            raise ConfigError(f"unknown mode {mode!r} (use one of {', '.join(MODES)})", field=f"{where}.mode")
        conf = g.get("confidence", default_conf)
        _check_conf(conf, f"{where}.confidence")
        out.append(Gate(i, g["metric"], rule, amount, relative, mode, float(conf), f"{rule} {raw}"))
    return out


def _check_conf(conf, field: str) -> None:
    if isinstance(conf, bool) or not isinstance(conf, (int, float)) or not 0.5 <= conf < 1:
        raise ConfigError(f"confidence must be a number in [0.5, 1), got {conf!r}", field=field)


@dataclass
class _Test:
    """A gate reduced to excess x vs tau, with everything needed to decide."""
    x: float | None
    tau: float
    p_beyond: float | None
    p_within: float | None
    interval: Callable[[float], tuple[float, float] | None]  # alpha -> interval of the reported quantity
    mde: Callable[[float], float | None]  # alpha -> the excess caught with 80% power
    scale: str
    observed: float | None
    note: str | None = None


def _k(alpha: float) -> float:
    return float(sps.norm.ppf(1 - alpha) + sps.norm.ppf(st.POWER))


def _share_mde(tau: float, flip: float, n: float):
    """MDE of a change of a share: beyond 100 points nothing is detectable (None)."""
    def mde(a):
        v = tau + st.mde_paired_proportion(flip, n, a)
        return v if v < 1.0 else None
    return mde


def _change_test(g: Gate, mc: MetricComparison) -> _Test:
    sign = 1.0 if g.rule == "max_increase" else -1.0
    note = None
    zero_base = g.relative and mc.baseline == 0
    if zero_base:
        # no relative change of 0 can stay within N%: any increase (decrease) is beyond it
        note = (f"the baseline is 0, so any {'increase' if sign > 0 else 'decrease'} is beyond "
                f"{g.text.split(' ', 1)[1]}: decided as an absolute change with tolerance 0")
    if mc.counts is not None:
        e = mc.counts
        tau = g.amount * mc.baseline if g.relative else g.amount
        d0 = sign * tau  # boundary of the tolerated difference
        z = st.tango_z(e.gains, e.losses, e.n, d0, st.CONTINUITY)
        p_up, p_down = float(sps.norm.sf(z)), float(sps.norm.cdf(z))
        p_beyond, p_within = (p_up, p_down) if sign > 0 else (p_down, p_up)
        return _Test(sign * mc.delta, tau, p_beyond, p_within,
                     lambda a: st.tango_interval(e.gains, e.losses, e.n, a, st.CONTINUITY),
                     _share_mde(tau, (e.gains + e.losses) / e.n, e.n), "difference", mc.delta, note)
    tau = 0.0 if zero_base else g.amount
    if mc.boot is not None:
        scale_k = mc.n if mc.kind == "total" else 1.0
        if g.relative and not zero_base and mc.boot.log_ratio is not None:
            return _log_ratio_test(mc.boot.log_ratio, sign, g.amount, mc.ratio - 1.0)
        if not (g.relative and not zero_base):
            t = _studentized_test(mc.boot.diff.scaled(scale_k), sign, tau, "difference", mc.delta)
            t.note = note
            return t
    if g.relative and not zero_base:
        if mc.ratio_reps is None or mc.ratio is None:
            return _Test(None, g.amount, None, None, lambda a: None, lambda a: None, "relative", None)
        reps, obs = mc.ratio_reps - 1.0, mc.ratio - 1.0
        scale = "relative"
    else:
        reps, obs, scale = mc.diff_reps, mc.delta, "difference"
    t = _reps_test(sign * reps, sign * obs, tau, mc.expand_n, sign, scale, obs)
    if scale == "relative" and mc.kind == "quantile":
        # the quantile test works on the ratio's logarithm, whose spread the bootstrap gives; a
        # normal MDE on the ratio itself overstated the power (0.65 measured at n=300)
        with np.errstate(invalid="ignore", divide="ignore"):
            se_log = float(np.nanstd(np.log(mc.ratio_reps[np.isfinite(mc.ratio_reps) & (mc.ratio_reps > 0)])))
        t.mde = lambda a: _log_mde(sign, g.amount, se_log, a)
    t.note = note
    return t


def _log_mde(sign: float, tau: float, se_log: float, a: float) -> float | None:
    """Excess caught with 80% power by a test on the log ratio: (1+tau) exp(k se) - 1 for an
    increase, 1 - (1-tau) exp(-k se) for a decrease."""
    if not math.isfinite(se_log):
        return None
    if sign > 0:
        grow = _expm1(_k(a) * se_log)  # a huge spread (a few cases) overflows exp: no MDE then
        return None if not math.isfinite(grow) else (1 + tau) * (1 + grow) - 1
    return 1 - max(1 - tau, 0.0) * math.exp(-_k(a) * se_log)


def _expm1(x: float) -> float:
    """expm1 that gives inf instead of raising OverflowError (log-ratio bounds of a few cases)."""
    if math.isnan(x):
        return x
    if not math.isfinite(x):
        return -1.0 if x < 0 else math.inf
    try:
        return math.expm1(x)
    except OverflowError:
        return math.inf


def _studentized_test(s: st.Studentized, sign: float, tau: float, scale: str, observed) -> _Test:
    """Excess sign * value against tau from bootstrap-t replicates of the value."""
    if sign > 0:
        p_beyond, p_within = s.p_greater(tau), s.p_less(tau)
    else:
        p_beyond, p_within = s.p_less(-tau), s.p_greater(-tau)
    return _Test(sign * s.est, tau, p_beyond, p_within, s.interval,
                 lambda a: tau + st.mde_normal(s.se, a), scale, observed)


def _log_ratio_test(s: st.Studentized, sign: float, tau: float, observed: float) -> _Test:
    """A relative rule ("N%") on a ratio of means, tested on the log scale (bootstrap-t)."""
    def interval(a):
        lo, hi = s.interval(a)
        return _expm1(lo), _expm1(hi)
    mde = lambda a: _log_mde(sign, tau, s.se, a)
    if sign < 0 and tau >= 1.0:  # a decrease of 100% or more is always tolerated
        return _Test(-observed, tau, 1.0, 0.0, interval, mde, "relative", observed)
    null = math.log1p(sign * tau)
    if sign > 0:
        p_beyond, p_within = s.p_greater(null), s.p_less(null)
    else:
        p_beyond, p_within = s.p_less(null), s.p_greater(null)
    return _Test(sign * observed, tau, p_beyond, p_within, interval, mde, "relative", observed)


def excess_p_values(xreps: np.ndarray, tau: float, n: int | None) -> tuple[float, float]:
    """(p_beyond, p_within) of bootstrap replicates of the excess x against tolerance tau;
    n enables the expanded-percentile scale, None keeps plain percentiles (quantiles)."""
    return st.bootstrap_p_greater(xreps, tau, n), st.bootstrap_p_greater(-xreps, -tau, n)


def _reps_test(xreps, x, tau, n, sign, scale, observed) -> _Test:
    p_beyond, p_within = excess_p_values(xreps, tau, n)

    def interval(a):
        lo, hi = st.percentile_interval(xreps, a, n)
        return tuple(sorted((sign * lo, sign * hi)))  # back in the reported quantity

    se = float(np.nanstd(xreps[np.isfinite(xreps)])) if np.isfinite(xreps).any() else math.nan
    return _Test(x, tau, p_beyond, p_within, interval,
                 lambda a: tau + st.mde_normal(se, a) if math.isfinite(se) else None, scale, observed)


def _bound_test(g: Gate, mc: MetricComparison) -> _Test:
    sign = 1.0 if g.rule == "max" else -1.0  # max: x = cand - bound; min: x = bound - cand
    x = sign * (mc.candidate - g.amount)
    if mc.counts is not None:
        k, n = mc.counts.k_cand, mc.counts.n_cand
        pg, pl = st.binom_p_greater(k, n, g.amount), st.binom_p_less(k, n, g.amount)
        p_beyond, p_within = (pg, pl) if sign > 0 else (pl, pg)
        se = math.sqrt(g.amount * (1 - g.amount) / n) if 0 < g.amount < 1 else None
        return _Test(x, 0.0, p_beyond, p_within, lambda a: st.clopper_pearson(k, n, a),
                     lambda a: st.mde_normal(se, a) if se else None, "value", mc.candidate)
    if mc.boot is not None:
        s = mc.boot.cand.scaled(mc.n if mc.kind == "total" else 1.0)
        if sign > 0:
            p_beyond, p_within = s.p_greater(g.amount), s.p_less(g.amount)
        else:
            p_beyond, p_within = s.p_less(g.amount), s.p_greater(g.amount)
        return _Test(x, 0.0, p_beyond, p_within, s.interval, lambda a: st.mde_normal(s.se, a),
                     "value", mc.candidate)
    xreps = sign * (mc.cand_reps - g.amount)
    t = _reps_test(xreps, x, 0.0, mc.expand_n, sign, "value", mc.candidate)
    t.interval = lambda a, _i=t.interval: tuple(v + g.amount for v in _i(a))
    return t


def evaluate(gates: list[Gate], comps: dict[str, MetricComparison], holm: bool = True) -> tuple[list[dict], dict]:
    """Decide every gate; returns (gate dicts for comparison.json, holm info)."""
    tests: list[_Test | None] = []
    reasons: list[str | None] = []
    for g in gates:
        mc = comps.get(g.metric)
        why = _no_data(g, mc, point=g.mode == "point")
        if why:
            tests.append(None)
            reasons.append(why)
            continue
        t = _change_test(g, mc) if g.rule.startswith("max_") and g.rule != "max" else _bound_test(g, mc)
        if t.x is None or not math.isfinite(t.x) or t.p_beyond is None:
            tests.append(None)
            reasons.append("no interval could be computed (baseline value is 0 or missing)")
            continue
        tests.append(t)
        reasons.append(None)
    family = [i for i, (g, t) in enumerate(zip(gates, tests)) if t is not None and g.mode == "significant"]
    adjusted, ranks = _holm([tests[i].p_beyond for i in family]) if holm else ([tests[i].p_beyond for i in family], None)
    m = len(family)
    adj = {i: (adjusted[k], ranks[k] if ranks else None) for k, i in enumerate(family)}
    out = []
    for g, t, why in zip(gates, tests, reasons):
        mc = comps.get(g.metric)
        d = {"metric": g.metric, "rule": g.text, "mode": g.mode, "confidence": g.confidence,
             "baseline": mc.baseline if mc else None, "candidate": mc.candidate if mc else None,
             "delta": mc.delta if mc else None, "n": mc.n if mc else 0,
             "warnings": _direction_warning(g)}
        if t is None:
            d.update(verdict="inconclusive", passed=g.mode != "noninferior", reason=why, ci=None,
                     p_value=None, p_adjusted=None, mde=None, scale=None, observed=None, tolerance=None)
            out.append(json_safe(d))
            continue
        a = g.alpha
        p_adj, rank = adj.get(g.index, (t.p_beyond, None))
        ci = t.interval(a)
        d.update(scale=t.scale, observed=t.observed, tolerance=t.tau, ci=list(ci) if ci else None,
                 p_value=t.p_beyond, p_within=t.p_within, p_adjusted=p_adj)
        if g.mode == "significant" and holm and m > 0:
            level = a / (m - rank + 1)
            ci_adj = t.interval(level)
            d["holm"] = {"family_size": m, "rank": rank, "adjusted_alpha": level,
                         "adjusted_confidence": 1 - 2 * level, "ci": list(ci_adj) if ci_adj else None}
        # the true excess at which this gate fails with 80% power (first Holm step: alpha/m)
        a_mde = a / max(m, 1) if (g.mode == "significant" and holm) else a
        mde_x = t.mde(a_mde)
        d["mde"] = mde_x
        verdict, passed, reason = _decide(g, t, p_adj, mde_x)
        if t.note:
            d["warnings"].append(t.note)
            reason += f"; {t.note}"
        if g.mode == "point" and mc.thin:
            # point mode compares the point estimates whatever n is; say how little they rest on
            d["warnings"].append(f"evidence is thin: {mc.thin}")
            reason += f"; evidence is thin: {mc.thin}"
        d.update(verdict=verdict, passed=passed, reason=reason)
        out.append(json_safe(d))
    info = {"applied": bool(holm and m > 0), "enabled": holm, "family_size": m,
            "method": "holm step-down on one-sided p-values against each gate's tolerance",
            "gates": [gates[i].index for i in family]}
    return out, info


def _direction_warning(g: Gate) -> list[str]:
    """A change rule that guards the good direction is probably a typo: say so."""
    higher_better = direction(g.metric)
    if (g.rule == "max_increase" and higher_better) or (g.rule == "max_decrease" and not higher_better):
        better = "higher" if higher_better else "lower"
        return [f"{g.rule} on {g.metric}, where {better} is better: this gate fails when the metric improves"]
    return []


def _no_data(g: Gate, mc: MetricComparison | None, point: bool = False) -> str | None:
    if mc is None:
        return f"metric {g.metric} was not measured in both runs"
    if mc.unknown:
        return f"unknown: {mc.unknown}"
    if mc.n == 0 or mc.candidate is None:
        return "nothing to compare: no paired case has a value on both sides"
    if mc.thin and not point:
        return f"evidence too thin: {mc.thin}"
    return None


def _decide(g: Gate, t: _Test, p_adj: float, mde_x) -> tuple[str, bool, str]:
    a = g.alpha
    beyond_txt = f"{t.scale} {t.observed:.4g} vs allowed {g.text}"
    if g.mode == "point":
        if t.x > t.tau:
            return "fail", False, f"observed {beyond_txt}: beyond the tolerance"
        return "pass", True, f"observed {beyond_txt}: within the tolerance"
    if g.mode == "significant":
        if p_adj <= a:
            return "fail", False, f"interval lies entirely beyond the tolerance ({beyond_txt})"
        if t.p_within <= a:
            return "pass", True, "interval lies entirely within the tolerance"
        return ("inconclusive", True,
                "interval straddles the tolerance: too few cases to tell; " +
                (f"a true excess of {_fmt(mde_x)} would be caught with 80% power" if mde_x is not None
                 else "no excess could be caught with 80% power at this size"))
    if t.p_within <= a:
        return "pass", True, "interval lies entirely within the tolerance (non-inferior)"
    if t.p_beyond <= a:
        return "fail", False, f"interval lies entirely beyond the tolerance ({beyond_txt})"
    return ("inconclusive", False,
            "non-inferiority not shown: the interval reaches beyond the tolerance (fails in noninferior mode)")


def _fmt(v) -> str:
    return "n/a" if v is None or not math.isfinite(v) else f"{v:.4g}"


def _holm(pvalues: list[float]) -> tuple[list[float], list[int]]:
    """Holm-adjusted p-values and each p-value's rank (1 = smallest), in input order."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [0.0] * m
    ranks = [0] * m
    running = 0.0
    for k, i in enumerate(order):
        running = max(running, min(1.0, (m - k) * pvalues[i]))
        adjusted[i] = running
        ranks[i] = k + 1
    return adjusted, ranks


def holm_adjust(pvalues: list[float]) -> list[float]:
    """Holm step-down adjusted p-values (same order as given)."""
    return _holm(list(pvalues))[0]
