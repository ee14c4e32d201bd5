"""A/A calibration: measure the noise of the baseline and size the next comparison (pure).

Input is either two runs of the same variant (A/A; the second with the cache bypassed) or one
run with ``repeats >= 2``, whose even and odd repeats are split into two pseudo-runs. In an A/A
pair nothing changed, so every difference is noise: the pass/fail flip rate, the spread of
paired score differences, the spread of latency ratios.

Recommendations per gate: the number of cases (and repeats, when the data set is too small) for
which (z_{1-a} + z_0.8) * SE <= tolerance, with a = the gate's one-sided alpha divided by the
number of significant gates (Holm's first step, conservative). At that size an unchanged
candidate passes a ``noninferior`` gate with 80% probability, and a ``significant`` gate catches
a true change of twice the tolerance with 80% power. A/A data only measure noise; a real
candidate also varies case by case, so treat the numbers as lower bounds.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import stats as sps

from ..errors import InputError
from ..model import CaseResult, Run
from .runs import paired_comparisons, resamples_of
from . import stats as st
from .gates import evaluate, parse_gates
from .paired import json_safe

POWER = 0.8


def split_repeats(run: Run) -> tuple[Run, Run]:
    """Even and odd repeats of every case as two runs (cases with a single sample are dropped)."""
    a_cases, b_cases = [], []
    for c in run.cases:
        if len(c.samples) < 2:
            continue
        a_cases.append(CaseResult(c.id, c.source, c.input, c.expected, c.samples[0::2]))
        b_cases.append(CaseResult(c.id, c.source, c.input, c.expected, c.samples[1::2]))
    if not a_cases:
        raise InputError("calibration needs two runs or a run with repeats >= 2", field="repeats")
    mk = lambda cases: Run(variant=run.variant, environment=run.environment, cases=cases, scorers=run.scorers)
    return mk(a_cases), mk(b_cases)


def calibrate(run_a: Run, run_b: Run | None, gates: list[dict], decision: dict | None = None,
              seed: int = 0) -> dict:
    """Noise measured from A/A data and, per gate, the cases and repeats needed."""
    decision = dict(decision or {})
    rules = parse_gates(gates or [], decision)
    source = "two runs (A/A)"
    if run_b is None:
        run_a, run_b = split_repeats(run_a)
        source = "even vs odd repeats of one run"
    conf = float(decision.get("confidence", 0.95))
    alpha = (1 - conf) / 2
    paired = paired_comparisons(run_a, run_b, alpha, resamples_of(decision), seed, rules)
    comps, n = paired.comps, paired.n
    if n == 0:
        raise InputError("the two runs share no case id: nothing to calibrate", field="cases")
    repeats = max(1, round(float(np.mean([len(c.samples) for c in run_a.cases]))))
    noise = {name: _noise(mc) for name, mc in comps.items() if mc.n > 0 and mc.unknown is None}
    m = sum(1 for g in rules if g.mode == "significant") or 1
    recs = [_recommend(g, comps.get(g.metric), n, repeats, m) for g in rules]
    aa_gates, _ = evaluate(rules, comps, bool(decision.get("holm", True)))
    return json_safe({"source": source, "n_cases": n, "repeats": repeats, "confidence": conf, "power": POWER,
            "family_size": m, "noise": noise, "recommendations": recs,
            "aa_gates": [{"metric": g["metric"], "rule": g["rule"], "verdict": g["verdict"],
                          "passed": g["passed"]} for g in aa_gates]})


def _se(mc) -> float | None:
    """Standard error of the paired difference at the current size."""
    if mc.counts is not None:
        e = mc.counts
        flip = (e.gains + e.losses) / e.n
        return math.sqrt(max(flip - mc.delta ** 2, 0.0) / e.n)
    if mc.diff_reps is not None:
        return float(np.nanstd(mc.diff_reps))
    return None


def _noise(mc) -> dict:
    out: dict = {"n": mc.n, "baseline": mc.baseline, "se_difference": _se(mc)}
    if mc.binary:
        out["flip_rate"] = (mc.n01 + mc.n10) / mc.n
    elif mc.case_base is not None:
        d = mc.case_cand - mc.case_base
        out["sd_paired_difference"] = float(np.nanstd(d, ddof=1)) if mc.n > 1 else None
        if mc.kind == "rate":
            out["flip_rate"] = float(np.nanmean(np.abs(d)))  # mean |change| of per-case pass share
    if mc.kind == "quantile" and mc.ratio_reps is not None:
        with np.errstate(invalid="ignore", divide="ignore"):
            out["se_log_ratio"] = float(np.nanstd(np.log(mc.ratio_reps)))
    if mc.repeats:
        out["repeats"] = mc.repeats
    return out


def _recommend(g, mc, n: int, repeats: int, m: int) -> dict:
    rec = {"metric": g.metric, "rule": g.text, "mode": g.mode}
    if mc is None or mc.n == 0 or mc.unknown:
        rec["note"] = "metric not measured in the A/A data" + (f" ({mc.unknown})" if mc and mc.unknown else "")
        return rec
    a = g.alpha / m
    k = float(sps.norm.ppf(1 - a) + sps.norm.ppf(POWER))
    if g.rule in ("min", "max"):
        return rec | _bound_need(g, mc, a, n)
    base = mc.baseline or 0.0
    # tolerances and detectable changes are shown in the rule's own terms: "20%" as a share of
    # the baseline, whatever scale the test works on (a log ratio for quantiles)
    if g.relative:
        rec["scale"] = "relative"
    if mc.kind == "quantile" and g.relative:
        with np.errstate(invalid="ignore", divide="ignore"):
            se = float(np.nanstd(np.log(mc.ratio_reps)))
        tau_log = math.log1p(g.amount)
        mde_log = k * se
        need = math.ceil(n * (mde_log / tau_log) ** 2) if mde_log > 0 else 1
        return rec | _cases_and_repeats(need, n, repeats, math.expm1(mde_log), g.amount)
    tau = g.amount * base if g.relative else g.amount
    to_user = (lambda v: v / base) if g.relative and base else (lambda v: v)
    if mc.counts is not None:
        e = mc.counts
        flip = (e.gains + e.losses) / e.n
        per_case = e.n / mc.n  # effective samples a case contributes
        need = (_smallest_n(lambda nn: st.mde_paired_proportion(flip, nn * per_case, a) <= tau)
                if tau > 0 else None)
        return rec | _cases_and_repeats(need, n, repeats, to_user(st.mde_paired_proportion(flip, e.n, a)),
                                        to_user(tau) if tau > 0 else g.amount)
    se = _se(mc)
    if se is None or tau <= 0:
        rec["note"] = "a zero tolerance can never be shown: use a tolerance > 0"
        return rec
    mde_now = k * se
    need = math.ceil(n * (mde_now / tau) ** 2) if mde_now > 0 else 1
    return rec | _cases_and_repeats(need, n, repeats, to_user(mde_now), to_user(tau))


def _cases_and_repeats(need: int | None, n: int, repeats: int, mde_now: float, tau: float) -> dict:
    out = {"tolerance": float(tau), "mde_now": float(mde_now), "enough_now": bool(mde_now <= tau)}
    if need is None:
        out["note"] = "a zero tolerance can never be shown: use a tolerance > 0"
        return out
    out["cases_needed"] = int(need)
    # repeats only when the data set has too few cases: more cases also average over the
    # case-by-case variation that A/A data cannot see, more repeats only over sampling noise
    out["repeats_needed"] = max(repeats, math.ceil(need * repeats / n)) if need > n else repeats
    out["note"] = (f"{need} cases" + (f" (the data set has {n}: use repeats: {out['repeats_needed']})" if need > n else ""))
    return out


def _bound_need(g, mc, a: float, n: int) -> dict:
    p = mc.candidate if mc.candidate is not None else mc.baseline
    bound = g.amount
    room = (bound - p) if g.rule == "max" else (p - bound)
    if room <= 0:
        return {"tolerance": bound, "note": f"the observed value {p:.4g} is already beyond the bound {bound:g}"}
    za, zb = float(sps.norm.ppf(1 - a)), float(sps.norm.ppf(POWER))
    if mc.counts is not None and 0 < bound < 1:
        # one-sample test of a share against the bound: the null variance is the bound's, so a
        # rate that was 0 in every sample still needs samples (it was a variance floor of 1e-12,
        # which recommended "1 case"); and never fewer than the samples in which zero events
        # could show the bound at all: (1 - bound)^n <= a for max, bound^n <= a for min
        need_s = ((za * math.sqrt(bound * (1 - bound)) + zb * math.sqrt(p * (1 - p))) / room) ** 2
        need_s = max(need_s, math.log(a) / math.log(1 - bound if g.rule == "max" else bound))
        per_case = mc.counts.n_cand / mc.n  # effective samples a case contributes
        need = math.ceil(need_s / per_case)
        mde_now = (za + zb) * math.sqrt(bound * (1 - bound) / mc.counts.n_cand)
    else:
        se = float(np.nanstd(mc.cand_reps)) if mc.cand_reps is not None else 0.0
        mde_now = (za + zb) * se
        need = math.ceil(n * (mde_now / room) ** 2) if mde_now > 0 else 1
    return {"tolerance": bound, "mde_now": float(mde_now), "enough_now": bool(mde_now <= room), "cases_needed": int(need),
            "note": f"{need} cases to show the value stays within {bound:g} (observed {p:.4g})"}


def _smallest_n(ok, hi: int = 10_000_000) -> int | None:
    if not ok(hi):
        return None
    lo = 1
    while lo < hi:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def render_calibration(result: dict) -> str:
    """Plain-text summary of :func:`calibrate` for the terminal."""
    lines = [f"A/A calibration from {result['source']}: {result['n_cases']} cases, "
             f"{result['repeats']} repeat(s) per case",
             f"(power {result['power']:.0%}, confidence {result['confidence']}, "
             f"{result['family_size']} significant gate(s) under Holm)", "", "Noise:"]
    for name, nz in result["noise"].items():
        bits = []
        if "flip_rate" in nz:
            bits.append(f"flip rate {nz['flip_rate']:.3f}")
        if nz.get("sd_paired_difference") is not None:
            bits.append(f"sd of paired difference {nz['sd_paired_difference']:.4g}")
        if "se_log_ratio" in nz:
            bits.append(f"se of log ratio {nz['se_log_ratio']:.3f}")
        if nz.get("repeats"):
            red = nz["repeats"].get("baseline", {}).get("se_reduction")
            if red is not None:
                bits.append(f"repeats cut the SE by {red:.0%}")
        if bits:
            lines.append(f"  {name:<28} " + ", ".join(bits))
    lines += ["", "Gates:"]
    aa = {(g["metric"], g["rule"]): g for g in result["aa_gates"]}
    for r in result["recommendations"]:
        now = aa.get((r["metric"], r["rule"]), {})
        head = f"  {r['metric']} {r['rule']} ({r['mode']}): A/A verdict {now.get('verdict', '?')}"
        if "mde_now" in r:
            if r.get("scale") == "relative":
                head += (f"; smallest detectable now {100 * r['mde_now']:.1f}% vs tolerance "
                         f"{100 * r['tolerance']:.1f}% (of the baseline)")
            else:
                head += f"; smallest detectable now {r['mde_now']:.4g} vs tolerance {r['tolerance']:.4g}"
        lines.append(head)
        if r.get("note"):
            lines.append(f"      -> {r['note']}")
    return "\n".join(lines)
