"""Compare two runs case by case and apply the gates: the comparison.json of design.md.

``compare_runs(base, cand, gates, decision, seed=0, pairwise=None) -> dict`` is the entry point.
It is pure: the caller loads the runs and writes or renders the result. Its ``exit_code`` is 3
(verdict ``incomplete``) when the comparison is not complete (see ``coverage.py``: a run with
``complete: false``, no paired case, or coverage below ``decision.min_coverage``); otherwise 1
exactly when some gate has ``passed: false`` (a fail, or inconclusive in noninferior mode).
Invalid gates raise ConfigError naming ``gates[i].field``; duplicate case ids raise InputError.

``decision`` keys (the config's ``decision:``): ``mode`` (point | significant | noninferior,
default significant), ``confidence`` (two-sided, default 0.95), ``holm`` (default true),
``bootstrap`` (resamples, default 10,000; ``resamples`` is accepted as an alias), ``min_coverage``
(share of the baseline's cases the candidate must pair, default 1.0).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError, InputError
from ..metrics import MetricSeries, case_metrics, direction
from ..model import SCHEMA_VERSION, Run
from . import stats
from .coverage import coverage, min_coverage_of
from .provenance import restrict
from .diff import case_changes
from .gates import evaluate, parse_gates
from .listing import case_rows, describe_side, distributions
from .paired import MetricComparison, compare_means, compare_quantiles, json_safe

__all__ = ["compare_runs", "paired_comparisons", "Paired", "resamples_of"]


def resamples_of(decision: dict) -> int:
    """Bootstrap resamples from the decision settings (config key ``bootstrap``)."""
    key = "bootstrap" if "bootstrap" in decision else "resamples"
    value = decision.get(key, stats.DEFAULT_RESAMPLES)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1000:
        raise ConfigError(f"must be a whole number of at least 1000, got {value!r}", field=f"decision.{key}")
    return value


def _index(ids: list[str], side: str) -> dict[str, int]:
    idx = dict(zip(ids, range(len(ids))))
    if len(idx) != len(ids):
        seen: set[str] = set()
        dup = next(i for i in ids if i in seen or seen.add(i))
        raise InputError(f"case id {dup!r} appears twice in the {side} run", field="cases")
    return idx


@dataclass
class Paired:
    """Per-metric paired comparisons of two runs (what compare_runs and calibrate build on)."""
    comps: dict[str, MetricComparison]
    base: dict  # metric name -> MetricSeries of the baseline
    cand: dict
    ids: list[str]  # paired case ids, in baseline order
    n: int
    base_pos: np.ndarray  # position in the baseline run of each paired case
    cand_pos: np.ndarray  # position in the candidate run of each paired case
    only_in_baseline: list[str]
    only_in_candidate: list[str]
    like_with_like: list[str] = field(default_factory=list)  # what provenance left out, and why


def paired_comparisons(base: Run, cand: Run, alpha: float = 0.025, resamples: int = stats.DEFAULT_RESAMPLES,
                       seed: int = 0, rules: list | None = None, pairwise: list[dict] | None = None,
                       like_with_like: dict | None = None) -> Paired:
    """Pair the runs by case id and compare every metric measured in both (plus the pairwise
    judgments, see :func:`compare_runs`). ``like_with_like`` (``{"compare_recorded": bool}``)
    applies the provenance rules of ``provenance.py`` (latency only between live-timed pairs, a
    recorded side's latency and cost only on request); None compares every value (an A/A
    calibration of one run)."""
    base_ids, cand_ids = [c.id for c in base.cases], [c.id for c in cand.cases]
    _index(base_ids, "baseline")
    ci = _index(cand_ids, "candidate")
    in_cand = np.fromiter(map(ci.get, base_ids, [-1] * len(base_ids)), dtype=np.int64, count=len(base_ids))
    base_pos = np.flatnonzero(in_cand >= 0)
    cand_pos = in_cand[base_pos]
    n = int(base_pos.size)
    to_b = np.full(len(base_ids), -1, dtype=np.int64)
    to_c = np.full(len(cand_ids), -1, dtype=np.int64)
    to_b[base_pos] = np.arange(n)
    to_c[cand_pos] = np.arange(n)
    paired_ids = [base_ids[i] for i in base_pos]
    only_b = [base_ids[i] for i in np.flatnonzero(to_b < 0)]
    only_c = [cand_ids[i] for i in np.flatnonzero(to_c < 0)]
    mb, mcand = case_metrics(base), case_metrics(cand)
    missing: dict[str, MetricComparison] = {}
    for pw in pairwise or []:
        mb[pw["metric"]], mcand[pw["metric"]] = _pairwise_series(pw, paired_ids)
    for g in rules or []:
        if n == 0:
            # two empty runs (or no shared case) have no score.* metrics to name: the gates say
            # there is nothing to compare instead of calling a configured metric unknown
            comps_missing = MetricComparison(g.metric, "", direction(g.metric), 0)
            comps_missing.warnings.append("no case is in both runs: nothing to compare")
            missing[g.metric] = comps_missing
        elif g.metric not in mb and g.metric not in mcand:
            known = ", ".join(sorted(set(mb) | set(mcand)))
            raise ConfigError(f"unknown metric {g.metric!r}; this comparison has: {known}",
                              field=f"gates[{g.index}].metric")
    unknown, notes, lwl = {}, {}, []
    if like_with_like is not None:
        unknown, notes, lwl = restrict(mb, mcand, base, cand, to_b, to_c, n,
                                       bool(like_with_like.get("compare_recorded")))
    weights = stats.CaseWeights(n, resamples, seed) if n > 0 else None
    common = [m for m in mb if m in mcand]
    comps: dict[str, MetricComparison] = compare_means(
        [m for m in common if mb[m].kind != "quantile" and not m.startswith("pairwise.")],
        mb, mcand, to_b, to_c, n, weights, alpha)
    ident = np.arange(n)  # pairwise series are already in pairing order
    comps.update(compare_means([pw["metric"] for pw in pairwise or []], mb, mcand, ident, ident, n, weights, alpha))
    for pw in pairwise or []:
        comps[pw["metric"]].warnings.extend(pw.get("warnings") or [])
    groups: dict[str, list[str]] = {}  # quantiles of the same samples: latency.p50..p99, ttft.*
    for m in common:
        if mb[m].kind == "quantile":
            groups.setdefault(m.rsplit(".", 1)[0], []).append(m)
    for names in groups.values():
        comps.update(compare_quantiles(names, mb, mcand, to_b, to_c, n, weights, alpha))
    for name, mc in missing.items():
        comps.setdefault(name, mc)
    for m, why in unknown.items():
        if m in comps:
            mc = comps[m]
            mc.unknown, mc.baseline, mc.candidate, mc.delta, mc.ci, mc.p_value = why, None, None, None, None, None
            mc.ratio = mc.ratio_ci = None
    for m, extra in notes.items():
        if m in comps:
            comps[m].warnings.extend(extra)
    mismatch = usage_mismatch(base, cand)
    if mismatch:
        for name, mc in comps.items():
            if name.startswith(USAGE_METRICS) and not mc.unknown:
                undecided(mc, mismatch)
    crossed = conditions_differ(base, cand)
    if crossed:
        for name, mc in comps.items():
            if name.startswith(TIMING_METRICS):
                mc.warnings.append(crossed)
    return Paired(comps, mb, mcand, paired_ids, n, base_pos, cand_pos, only_b, only_c, lwl)


USAGE_METRICS = ("tokens.", "cost.")
TIMING_METRICS = ("latency.", "ttft.")


def conditions_differ(base: Run, cand: Run) -> str | None:
    """A warning when the two runs were replayed under different conditions (concurrency,
    streaming, workers, rate limits, ...), which move latency by themselves: a concurrency-1 run
    against a concurrency-8 run on a serial local server showed latency.p50 +1099%. Runs without
    recorded conditions (recorded baselines, older files) are not compared."""
    b = base.environment.get("conditions") if isinstance(base.environment, dict) else None
    c = cand.environment.get("conditions") if isinstance(cand.environment, dict) else None
    if not isinstance(b, dict) or not isinstance(c, dict):
        return None
    if "transport" in b or "transport" in c:  # files from before the direct path: all litellm
        b, c = {"transport": "litellm", **b}, {"transport": "litellm", **c}
    diff = [f"{k} {b.get(k)!r} vs {c.get(k)!r}" for k in sorted(set(b) | set(c)) if b.get(k) != c.get(k)]
    if not diff:
        return None
    return ("latency was measured under different run conditions (" + "; ".join(diff) +
            "): the difference may come from how the calls were made, not from the candidate")


def usage_sources(run: Run) -> dict[str, int]:
    """How many answered samples of a run have token counts of each provenance."""
    out: dict[str, int] = {}
    for case in run.cases:
        for s in case.samples:
            if s.error is None and s.usage_source is not None:
                out[s.usage_source] = out.get(s.usage_source, 0) + 1
    return out


def usage_mismatch(base: Run, cand: Run) -> str | None:
    """Why token and cost metrics cannot be compared, or None. A provider's count and litellm's
    estimate are different measurements (llama.cpp streamed vs not: +13% input tokens for the
    same prompts), so a difference between them says nothing about the candidate. Samples
    without a known provenance (older run files) are not held against the comparison."""
    b, c = usage_sources(base), usage_sources(cand)
    if len(set(b) | set(c)) <= 1:
        return None
    show = lambda d: ", ".join(f"{k} {v}" for k, v in sorted(d.items())) or "none"
    return ("token usage is not the same measurement on both sides (baseline: " + show(b) +
            "; candidate: " + show(c) + "): the provider's counts and litellm's estimates are not "
            "compared; not decided")


def undecided(mc: MetricComparison, reason: str) -> None:
    """Keep each side's value, drop the difference and its statistics: gates on the metric are
    inconclusive with ``reason``."""
    mc.unknown = reason
    mc.delta = mc.ci = mc.ratio = mc.ratio_ci = mc.p_value = mc.mde = None
    mc.diff_reps = mc.ratio_reps = mc.cand_reps = None
    if reason not in mc.warnings:
        mc.warnings.append(reason)


def _pairwise_series(pw: dict, paired_ids: list[str]):
    """A pairwise judgment (scoring.pairwise.score_pairwise) as two series in pairing order: the
    candidate's per-case win value in [0, 1] against the no-preference reference 0.5, so the
    paired machinery gives the interval of win_rate - 0.5 and gates work on it as on any mean."""
    pos = {cid: k for k, cid in enumerate(paired_ids)}
    vals = np.full(len(paired_ids), np.nan)
    for cid, v in (pw.get("per_case") or {}).items():
        if cid in pos and v is not None:
            vals[pos[cid]] = float(v)
    idx = np.arange(len(paired_ids))
    mk = lambda v: MetricSeries(pw["metric"], "mean", True, v, idx, len(paired_ids))
    return mk(np.where(np.isfinite(vals), 0.5, np.nan)), mk(vals)


def _loop_lag_notes(base: Run, cand: Run, comps: dict, metrics: dict) -> list[str]:
    """When the replay's event-loop lag is a meaningful share of a side's latencies, say so next
    to the latency metrics (their warnings) and in the report."""
    from ..replay.looplag import note

    out = []
    lat = comps.get("latency.p50")
    for side, run in (("baseline", base), ("candidate", cand)):
        # the compared (live-timed) median: a lag says nothing of answers served from the cache
        p50 = getattr(lat, side, None) if lat is not None else None
        text = note(run.environment.get("loop_lag_ms"), p50, side)
        if text and text not in out:
            out.append(text)
            for m, entry in metrics.items():
                if m.startswith(("latency.", "ttft.")):
                    entry.setdefault("warnings", []).append(text)
    return out


def compare_runs(base: Run, cand: Run, gates: list[dict] | None = None, decision: dict | None = None,
                 seed: int = 0, pairwise: list[dict] | None = None) -> dict:
    """The comparison.json dict. ``pairwise``: results of ``scoring.pairwise.score_pairwise``
    (``{"metric": "pairwise.NAME.win_rate", "per_case": {id: value}, ...}``), compared against
    no preference (0.5): baseline 0.5, candidate the win rate, delta win_rate - 0.5."""
    decision = dict(decision or {})
    rules = parse_gates(gates or [], decision)
    conf = float(decision.get("confidence", 0.95))
    alpha = (1 - conf) / 2
    holm = bool(decision.get("holm", True))
    resamples = resamples_of(decision)
    min_coverage = min_coverage_of(decision)

    paired = paired_comparisons(base, cand, alpha, resamples, seed, rules, pairwise,
                                like_with_like={"compare_recorded": bool(decision.get("compare_recorded"))})
    comps, mb, mcand, n = paired.comps, paired.base, paired.cand, paired.n
    only_b, only_c = paired.only_in_baseline, paired.only_in_candidate

    metrics = {}
    for m in list(mb) + [x for x in mcand if x not in mb]:
        if m in comps:
            metrics[m] = comps[m].to_dict()
        else:
            side = "baseline" if m in mb else "candidate"
            s = (mb if m in mb else mcand)[m]
            metrics[m] = {"baseline": s.value() if side == "baseline" else None,
                          "candidate": s.value() if side == "candidate" else None,
                          "delta": None, "ci": None, "p_value": None, "mde": None, "n": 0,
                          "test": "", "warnings": [f"only measured in the {side} run"]}

    gate_out, holm_info = evaluate(rules, comps, holm)
    cover = coverage(base, cand, n, only_b, only_c, min_coverage)
    exit_code = 1 if any(not g["passed"] for g in gate_out) else 0
    verdict = "fail" if exit_code else ("inconclusive" if any(g["verdict"] == "inconclusive" for g in gate_out) else "pass")
    if cover["problems"]:  # not measured (completely): never a pass, and not a measured regression
        exit_code, verdict = 3, "incomplete"

    counting = {s.name for s in base.scorers + cand.scorers if not s.informational}
    if not (base.scorers or cand.scorers):
        counting = set(name for m in metrics if m.startswith("score.") for name in [m.split(".")[1]])
    q = comps.get("quality.pass_rate")
    changes = {"regressions": [], "improvements": [], "n_regressions": 0, "n_improvements": 0}
    if q is not None and q.case_base is not None:
        changes = case_changes(base, cand, paired.base_pos, paired.cand_pos, q.case_base, q.case_cand, counting)
    rows, n_rows = case_rows(base, cand, paired.base_pos, paired.cand_pos,
                             q.case_base if q is not None else None, q.case_cand if q is not None else None)

    warnings = list(cover["problems"]) + paired.like_with_like + _loop_lag_notes(base, cand, comps, metrics)
    if (only_b or only_c) and n:
        warnings.append(f"{len(only_b)} cases only in baseline and {len(only_c)} only in candidate are not compared")
    mismatch = usage_mismatch(base, cand)
    if mismatch:
        warnings.append(f"tokens.* and cost.*: {mismatch}")
    crossed = conditions_differ(base, cand)
    if crossed:
        warnings.append(f"latency.* and ttft.*: {crossed}")
    return json_safe({
        "schema_version": SCHEMA_VERSION,
        "verdict": verdict,
        "exit_code": exit_code,
        "n_paired": n,
        "only_in_baseline": only_b,
        "only_in_candidate": only_c,
        "baseline": describe_side(base),
        "candidate": describe_side(cand),
        "decision": {"mode": decision.get("mode", "significant"), "confidence": conf, "holm": holm,
                     "resamples": resamples, "seed": seed, "min_coverage": min_coverage},
        "coverage": cover,
        "metrics": metrics,
        "gates": gate_out,
        "holm": holm_info,
        **changes,
        "cases": rows,
        "n_cases": n_rows,
        "distributions": distributions((base, cand)),
        "warnings": warnings,
    })
