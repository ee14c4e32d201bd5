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
    se_x: float | None
    scale: str
    observed: float | None


def _change_test(g: Gate, mc: MetricComparison) -> _Test:
    sign = 1.0 if g.rule == "max_increase" else -1.0
    if mc.binary:
        tau = g.amount * mc.baseline if g.relative else g.amount
        n01, n10, n = mc.n01, mc.n10, mc.n
        d0 = sign * tau  # boundary of the tolerated difference
        z = st.tango_z(n01, n10, n, d0, st.CONTINUITY)
        p_up, p_down = float(sps.norm.sf(z)), float(sps.norm.cdf(z))
        p_beyond, p_within = (p_up, p_down) if sign > 0 else (p_down, p_up)
        flip = (n01 + n10) / n
        return _Test(sign * mc.delta, tau, p_beyond, p_within,
                     lambda a: st.tango_interval(n01, n10, n, a, st.CONTINUITY),
                     math.sqrt(max(flip - mc.delta ** 2, 0.0) / n), "difference", mc.delta)
    if g.relative:
        if mc.ratio_reps is None or mc.ratio is None:
            return _Test(None, g.amount, None, None, lambda a: None, None, "relative", None)
        reps, obs = mc.ratio_reps - 1.0, mc.ratio - 1.0
        scale = "relative"
    else:
        reps, obs, scale = mc.diff_reps, mc.delta, "difference"
    return _reps_test(sign * reps, sign * obs, g.amount, mc.expand_n, sign, scale, obs)


def excess_p_values(xreps: np.ndarray, tau: float, n: int | None) -> tuple[float, float]:
    """(p_beyond, p_within) of bootstrap replicates of the excess x against tolerance tau;
    n enables the expanded-percentile scale (means), None keeps plain percentiles (quantiles)."""
    return st.bootstrap_p_greater(xreps, tau, n), st.bootstrap_p_greater(-xreps, -tau, n)


def _reps_test(xreps, x, tau, n, sign, scale, observed) -> _Test:
    p_beyond, p_within = excess_p_values(xreps, tau, n)

    def interval(a):
        lo, hi = st.percentile_interval(xreps, a, n)
        return tuple(sorted((sign * lo, sign * hi)))  # back in the reported quantity

    return _Test(x, tau, p_beyond, p_within, interval, float(np.nanstd(xreps)), scale, observed)


def _bound_test(g: Gate, mc: MetricComparison) -> _Test:
    sign = 1.0 if g.rule == "max" else -1.0  # max: x = cand - bound; min: x = bound - cand
    if mc.binary:
        k, n = mc.k_cand, mc.n
        pg, pl = st.binom_p_greater(k, n, g.amount), st.binom_p_less(k, n, g.amount)
        p_beyond, p_within = (pg, pl) if sign > 0 else (pl, pg)
        return _Test(sign * (mc.candidate - g.amount), 0.0, p_beyond, p_within,
                     lambda a: st.clopper_pearson(k, n, a),
                     math.sqrt(g.amount * (1 - g.amount) / n) if 0 < g.amount < 1 else None,
                     "value", mc.candidate)
    xreps = sign * (mc.cand_reps - g.amount)
    t = _reps_test(xreps, sign * (mc.candidate - g.amount), 0.0, mc.expand_n, sign, "value", mc.candidate)
    t.interval = lambda a, _i=t.interval: tuple(v + g.amount for v in _i(a))
    return t


def evaluate(gates: list[Gate], comps: dict[str, MetricComparison], holm: bool = True) -> tuple[list[dict], dict]:
    """Decide every gate; returns (gate dicts for comparison.json, holm info)."""
    tests: list[_Test | None] = []
    reasons: list[str | None] = []
    for g in gates:
        mc = comps.get(g.metric)
        why = _no_data(g, mc)
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
        mde_x = t.tau + st.mde_normal(t.se_x, a_mde) if t.se_x is not None else None
        if mc.binary and g.rule.startswith("max_") and g.rule != "max":
            mde_x = t.tau + st.mde_paired_proportion((mc.n01 + mc.n10) / mc.n, mc.n, a_mde)
        d["mde"] = mde_x
        verdict, passed, reason = _decide(g, t, p_adj, mde_x)
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


def _no_data(g: Gate, mc: MetricComparison | None) -> str | None:
    if mc is None:
        return f"metric {g.metric} was not measured in both runs"
    if mc.unknown:
        return f"unknown: {mc.unknown}"
    if mc.n == 0 or mc.candidate is None:
        return "no paired case has a value on both sides"
    if mc.thin:
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
                f"interval straddles the tolerance: too few cases to tell; a true excess of "
                f"{_fmt(mde_x)} would be caught with 80% power")
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
