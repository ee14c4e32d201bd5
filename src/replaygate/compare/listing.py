"""What a report shows beside the statistics, kept in the comparison so a comparison file alone
renders the same report as `gate` (pure; no I/O):

- ``describe_side(run)``: the variant, its model, the commit it ran at, and where its outputs came
  from (the live / cache / recorded / batch share of its samples);
- ``case_rows(...)``: every paired case with both outputs, scores and reasons, most regressed first;
- ``distributions(runs)``: shared-bin histograms of latency, cost and scores per side.

Texts are truncated here (``diff.truncate``); escaping for a given page is the renderer's job.
"""
from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np

from ..model import CaseResult, Run, Sample
from .diff import truncate

MAX_CASES = 2000  # listed in full up to this many; beyond it the most regressed are kept
PROVENANCES = ("live", "cache", "recorded", "batch")
MAX_BINS = 40


def provenance_of(sample: Sample, variant: dict) -> str:
    """Where a sample's output came from. Run files written before samples carried
    ``provenance`` are read by their ``cached`` flag and the variant kind."""
    p = getattr(sample, "provenance", None)
    if p in PROVENANCES:
        return p
    if variant.get("recorded") or variant.get("run"):
        return "recorded"
    return "cache" if sample.cached else "live"


def describe_side(run: Run) -> dict[str, Any]:
    """The variant as a reader needs it: name, what produced the outputs, commit, provenance."""
    from .provenance import shares

    v, env = run.variant, run.environment
    kind = next((k for k in ("recorded", "callable", "run") if v.get(k)), "model" if v.get("model") else None)
    sh = shares(run)
    n = sh.pop("n")
    out: dict[str, Any] = {"variant": v.get("name"), "summary_n_cases": len(run.cases), "kind": kind,
                           "model": v.get("model") or (v.get("callable") if kind == "callable" else None),
                           "n_samples": n, "provenance": {p: x for p, x in sh.items() if x}}
    prompt = v.get("prompt") or {}
    refs = {k: p for k, p in prompt.items() if isinstance(p, str) and p.startswith("git:")}
    if refs:
        out["prompt_refs"] = refs
    # gate --baseline-ref records the ref this side was read at (environment.git_ref) and the
    # refs its prompts were pinned from (variant.git_refs: ref -> SHA)
    git = {k: env.get(f"git_{k}") for k in ("commit", "branch", "dirty", "ref") if env.get(f"git_{k}") is not None}
    if git:
        out["git"] = git
    if isinstance(v.get("git_refs"), dict) and v["git_refs"]:
        out["git_refs"] = {str(r): str(sha) for r, sha in v["git_refs"].items()}
    return out


def _sample_side(case: CaseResult | None, variant: dict, pass_share: float) -> dict[str, Any]:
    """One side of a case row: the first output and error, scores over the case's samples."""
    if case is None:
        return {}
    samples = case.samples
    out = next((s.output for s in samples if s.output is not None), None)
    err = next((s.error for s in samples if s.error is not None), None)
    scores: dict[str, dict] = {}
    for s in samples:
        for name, sc in s.scores.items():
            e = scores.setdefault(name, {"values": [], "passed": [], "reason": None, "fail_reason": None})
            if sc.score is not None:
                e["values"].append(float(sc.score))
            if sc.passed is not None:
                e["passed"].append(bool(sc.passed))
            reason = sc.reason or (f"{sc.error.type}: {sc.error.message}" if sc.error else "")
            if reason and e["reason"] is None:
                e["reason"] = reason
            if reason and sc.passed is not True and e["fail_reason"] is None:
                e["fail_reason"] = reason
    lat = [s.latency_ms for s in samples if s.latency_ms is not None and s.error is None]
    cost = [s.cost_usd for s in samples if s.cost_usd is not None]
    return {
        "pass": None if math.isnan(pass_share) else float(pass_share),
        "output": truncate(out),
        "error": f"{err.type}: {truncate(err.message, 200)}" if err else None,
        "scores": {name: {"score": sum(e["values"]) / len(e["values"]) if e["values"] else None,
                          "passed": all(e["passed"]) if e["passed"] else None,
                          "reason": truncate(e["fail_reason"] or e["reason"], 200)}
                   for name, e in scores.items()},
        "latency_ms": sum(lat) / len(lat) if lat else None,
        "cost_usd": sum(cost) / len(cost) if cost else None,
        "provenance": provenance_of(samples[0], variant) if samples else None,
        "samples": len(samples),
    }


def _mean_score(case: CaseResult) -> float | None:
    vals = [sc.score for s in case.samples for sc in s.scores.values() if sc.score is not None]
    return sum(vals) / len(vals) if vals else None


def _has_error(case: CaseResult) -> bool:
    return any(s.error is not None for s in case.samples)


def case_rows(base: Run, cand: Run, base_pos, cand_pos, base_pass, cand_pass,
              limit: int = MAX_CASES) -> tuple[list[dict], int]:
    """Every paired case as a row, most regressed first: by the fall of the pass share, then
    (at equal fall) scored failures before errors, then by the fall of the mean score.
    Returns (rows cut at ``limit``, total). Only the rows kept are built (a light sort key is
    computed for every case), so a 100,000-case comparison stays cheap."""
    n = len(base_pos)
    b = np.asarray(base_pass, dtype=float) if base_pass is not None else np.full(n, np.nan)
    c = np.asarray(cand_pass, dtype=float) if cand_pass is not None else np.full(n, np.nan)
    with np.errstate(invalid="ignore"):
        change = c - b
    keys = []
    for k in range(n):
        bc, cc = base.cases[int(base_pos[k])], cand.cases[int(cand_pos[k])]
        sb, sc = _mean_score(bc), _mean_score(cc)
        drop = sb - sc if sb is not None and sc is not None else 0.0
        ch = change[k]
        keys.append((0.0 if math.isnan(ch) else float(ch), _has_error(bc) or _has_error(cc), -drop, bc.id, k))
    keys.sort()
    rows = []
    for *_, k in keys[:limit]:
        bc, cc = base.cases[int(base_pos[k])], cand.cases[int(cand_pos[k])]
        row = {"case": bc.id, "change": None if math.isnan(change[k]) else float(change[k]),
               "input": truncate(bc.input or cc.input),
               "expected": truncate(str(bc.expected)) if bc.expected is not None else None,
               "baseline": _sample_side(bc, base.variant, b[k]),
               "candidate": _sample_side(cc, cand.variant, c[k])}
        row["errors"] = bool(row["baseline"].get("error") or row["candidate"].get("error"))
        rows.append(row)
    return rows, n


# --- distributions -----------------------------------------------------------------------------

def sample_values(run: Run) -> dict[str, list[float]]:
    """Per plotted metric, the values of every sample (errors and unknown costs left out)."""
    values: dict[str, list[float]] = {"latency.mean": [], "cost.mean": []}
    for case in run.cases:
        for s in case.samples:
            if s.error is not None:
                continue
            if s.latency_ms is not None:
                values["latency.mean"].append(float(s.latency_ms))
            if s.cost_usd is not None:
                values["cost.mean"].append(float(s.cost_usd))
            for name, sc in s.scores.items():
                if sc.score is not None:
                    values.setdefault(f"score.{name}.mean", []).append(float(sc.score))
    return values


def histogram(metric: str, groups: list[list[float]]) -> dict[str, Any]:
    """Histograms of each group on shared bins (numpy's automatic edges of all the values;
    tenths for scores in [0, 1])."""
    allv = np.concatenate([np.asarray(g, dtype=float) for g in groups if g])
    lo, hi = float(allv.min()), float(allv.max())
    if metric.startswith("score.") and 0.0 <= lo and hi <= 1.0:
        edges = np.linspace(0.0, 1.0, 11)
    elif hi > lo:
        edges = np.histogram_bin_edges(allv, bins="auto")
    else:
        edges = np.array([lo - 0.5, hi + 0.5])
    if len(edges) > MAX_BINS + 1:  # keep bars visible
        edges = np.linspace(edges[0], edges[-1], MAX_BINS + 1)
    counts = [np.histogram(np.asarray(g, dtype=float), bins=edges)[0].tolist() if g else [0] * (len(edges) - 1)
              for g in groups]
    return {"edges": [float(e) for e in edges], "counts": counts, "n": [len(g) for g in groups]}


def distributions(runs: Iterable[Run]) -> dict[str, dict]:
    """Shared-bin histograms per metric that has values in some run; ``counts``/``n`` in run order."""
    series = [sample_values(r) for r in runs]
    metrics = list(dict.fromkeys(m for s in series for m in s))
    return {m: histogram(m, [s.get(m, []) for s in series]) for m in metrics if any(s.get(m) for s in series)}
