"""Compare two runs case by case and apply the gates: the comparison.json of design.md.

``compare_runs(base, cand, gates, decision, seed=0) -> dict`` is the entry point. It is pure:
the caller loads the runs and writes or renders the result.

``decision`` keys: ``mode`` (point | significant | noninferior, default significant),
``confidence`` (two-sided, default 0.95), ``holm`` (default true), ``resamples`` (bootstrap
resamples, default 10,000).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError, InputError
from ..metrics import case_metrics
from ..model import SCHEMA_VERSION, Run
from . import stats
from .diff import case_changes
from .gates import evaluate, parse_gates
from .paired import MetricComparison, compare_means, compare_quantiles

__all__ = ["compare_runs", "paired_comparisons", "Paired"]


def _index(run: Run, side: str) -> dict[str, int]:
    idx: dict[str, int] = {}
    for i, c in enumerate(run.cases):
        if c.id in idx:
            raise InputError(f"case id {c.id!r} appears twice in the {side} run", field="cases")
        idx[c.id] = i
    return idx


@dataclass
class Paired:
    """Per-metric paired comparisons of two runs (what compare_runs and calibrate build on)."""
    comps: dict[str, MetricComparison]
    base: dict  # metric name -> MetricSeries of the baseline
    cand: dict
    ids: list[str]  # paired case ids, in baseline order
    n: int
    base_index: dict[str, int]  # case id -> position in the run
    cand_index: dict[str, int]


def paired_comparisons(base: Run, cand: Run, alpha: float = 0.025, resamples: int = stats.DEFAULT_RESAMPLES,
                       seed: int = 0, rules: list | None = None) -> Paired:
    """Pair the runs by case id and compare every metric measured in both."""
    bi, ci = _index(base, "baseline"), _index(cand, "candidate")
    paired_ids = [c.id for c in base.cases if c.id in ci]
    n = len(paired_ids)
    to_b = np.full(len(base.cases), -1, dtype=np.int64)
    to_c = np.full(len(cand.cases), -1, dtype=np.int64)
    for k, cid in enumerate(paired_ids):
        to_b[bi[cid]] = k
        to_c[ci[cid]] = k
    mb, mcand = case_metrics(base), case_metrics(cand)
    for g in rules or []:
        if g.metric not in mb and g.metric not in mcand:
            known = ", ".join(sorted(set(mb) | set(mcand)))
            raise ConfigError(f"unknown metric {g.metric!r}; this comparison has: {known}",
                              field=f"gates[{g.index}].metric")
    weights = stats.CaseWeights(n, resamples, seed) if n > 0 else None
    common = [m for m in mb if m in mcand]
    comps: dict[str, MetricComparison] = compare_means(
        [m for m in common if mb[m].kind != "quantile"], mb, mcand, to_b, to_c, n, weights, alpha)
    groups: dict[str, list[str]] = {}  # quantiles of the same samples: latency.p50..p99, ttft.*
    for m in common:
        if mb[m].kind == "quantile":
            groups.setdefault(m.rsplit(".", 1)[0], []).append(m)
    for names in groups.values():
        comps.update(compare_quantiles(names, mb, mcand, to_b, to_c, n, weights, alpha))
    return Paired(comps, mb, mcand, paired_ids, n, bi, ci)


def compare_runs(base: Run, cand: Run, gates: list[dict] | None = None, decision: dict | None = None,
                 seed: int = 0) -> dict:
    decision = dict(decision or {})
    rules = parse_gates(gates or [], decision)
    conf = float(decision.get("confidence", 0.95))
    alpha = (1 - conf) / 2
    holm = bool(decision.get("holm", True))
    resamples = int(decision.get("resamples", stats.DEFAULT_RESAMPLES))
    if resamples < 1000:
        raise ConfigError("resamples must be at least 1000", field="decision.resamples")

    paired = paired_comparisons(base, cand, alpha, resamples, seed, rules)
    comps, mb, mcand, paired_ids, n = paired.comps, paired.base, paired.cand, paired.ids, paired.n
    bi, ci = paired.base_index, paired.cand_index

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
    exit_code = 1 if any(not g["passed"] for g in gate_out) else 0
    verdict = "fail" if exit_code else ("inconclusive" if any(g["verdict"] == "inconclusive" for g in gate_out) else "pass")

    counting = {s.name for s in base.scorers + cand.scorers if not s.informational}
    if not (base.scorers or cand.scorers):
        counting = set(name for m in metrics if m.startswith("score.") for name in [m.split(".")[1]])
    pairs = [(bi[cid], ci[cid]) for cid in paired_ids]
    q = comps.get("quality.pass_rate")
    changes = {"regressions": [], "improvements": [], "n_regressions": 0, "n_improvements": 0}
    if q is not None and q.case_base is not None:
        changes = case_changes(base, cand, pairs, q.case_base, q.case_cand, counting)

    warnings = []
    if not base.complete or not cand.complete:
        warnings.append("a run is incomplete: " + ", ".join(s for s, r in (("baseline", base), ("candidate", cand)) if not r.complete))
    only_b = [c.id for c in base.cases if c.id not in ci]
    only_c = [c.id for c in cand.cases if c.id not in bi]
    if only_b or only_c:
        warnings.append(f"{len(only_b)} cases only in baseline and {len(only_c)} only in candidate are not compared")
    if n == 0:
        warnings.append("no case is in both runs: nothing to compare")
    return {
        "schema_version": SCHEMA_VERSION,
        "verdict": verdict,
        "exit_code": exit_code,
        "n_paired": n,
        "only_in_baseline": only_b,
        "only_in_candidate": only_c,
        "baseline": {"variant": base.variant.get("name"), "summary_n_cases": len(base.cases)},
        "candidate": {"variant": cand.variant.get("name"), "summary_n_cases": len(cand.cases)},
        "decision": {"mode": decision.get("mode", "significant"), "confidence": conf, "holm": holm,
                     "resamples": resamples, "seed": seed},
        "metrics": metrics,
        "gates": gate_out,
        "holm": holm_info,
        **changes,
        "warnings": warnings,
    }
