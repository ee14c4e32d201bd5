"""Like with like: which samples' numbers may be compared, by where they came from (pure; no I/O).

Every sample has a ``provenance``: ``live`` (called in this run), ``cache`` (an answer recorded
earlier), ``recorded`` (production, from a trace) or ``batch`` (provider batch API: no latency).

* Quality, scores and tokens compare across provenances: a cached answer is the same answer.
* Cost compares across live and cache (same tokens, same prices). A ``recorded`` side's cost is
  production's (another price list, other caching) and is compared only when the user asks
  (``decision.compare_recorded: true``), labelled.
* Latency and time to first token compare only between samples timed live, on both sides of a
  pair: a cached answer carries the latency of another run (another time of day, another load),
  and production's latency is another environment (compared only with ``compare_recorded``,
  labelled). A pair without live timing on both sides is left out; with fewer than
  ``MIN_TIMED_PAIRS`` left, the metric is unknown and its gates are not decided, with the reason
  and the remedy (``--refresh-baseline``, ``live_timing: always``).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..metrics import MetricSeries
from ..model import Run

PROVENANCES = ("live", "cache", "recorded", "batch")
TIMED = ("latency.", "ttft.")
COSTED = ("cost.",)
MIN_TIMED_PAIRS = 5
REMEDY = ("re-measure both sides live: `gate --refresh-baseline` (the candidate is usually live "
          "already), `live_timing: always` in the config, or `--refresh`")


def sample_provenance(run: Run) -> np.ndarray:
    """Provenance of every sample, in the order of ``metrics.case_metrics`` (cases, then samples)."""
    return np.array([s.provenance or "live" for c in run.cases for s in c.samples], dtype=object)


def shares(run: Run) -> dict:
    """Share of the run's samples from each provenance (and n, the number of samples)."""
    prov = sample_provenance(run)
    n = int(prov.size)
    out = {p: (float(np.count_nonzero(prov == p)) / n if n else 0.0) for p in PROVENANCES}
    out["n"] = n
    return out


def describe(side: str, sh: dict) -> str:
    parts = [f"{100 * sh[p]:.0f}% {p}" for p in PROVENANCES if sh.get(p)]
    return f"{side}: " + (", ".join(parts) if parts else "no samples")


def restrict(mb: dict[str, MetricSeries], mc: dict[str, MetricSeries], base: Run, cand: Run,
             to_b: np.ndarray, to_c: np.ndarray, n: int, compare_recorded: bool = False
             ) -> tuple[dict[str, str], dict[str, list[str]], list[str]]:
    """Mask, in place in ``mb`` / ``mc``, the values that may not be compared. Returns
    (metric -> why it is unknown, metric -> notes for its warnings, report-level warnings)."""
    pb, pc = sample_provenance(base), sample_provenance(cand)
    sb, sc = shares(base), shares(cand)
    where = f"{describe('baseline', sb)}; {describe('candidate', sc)}"
    unknown: dict[str, str] = {}
    notes: dict[str, list[str]] = {}
    report: list[str] = []
    timing_ok = {"live"} | ({"recorded"} if compare_recorded else set())
    timed = [m for m in mb if m.startswith(TIMED) and m in mc]
    if timed:
        ok_b, ok_c = np.isin(pb, list(timing_ok)), np.isin(pc, list(timing_ok))
        # a pair is timed when each side has a live-timed sample with a value
        ref = "latency.mean" if "latency.mean" in mb and "latency.mean" in mc else timed[0]
        has_b = _cases_with(mb[ref], ok_b, to_b, n)
        has_c = _cases_with(mc[ref], ok_c, to_c, n)
        pairs = int((has_b & has_c).sum())
        for m in timed:
            mb[m] = _masked(mb[m], ok_b, to_b, has_b & has_c)
            mc[m] = _masked(mc[m], ok_c, to_c, has_b & has_c)
        label = []
        if compare_recorded and "recorded" in (set(pb) | set(pc)):
            label.append("production latency (recorded) compared because decision.compare_recorded is "
                         "true: another environment")
        if pairs < MIN_TIMED_PAIRS:
            why = (f"latency not compared: {pairs} of {n} paired cases were timed live on both sides "
                   f"({where}); latency compares only samples timed in this run: {REMEDY}")
            if "batch" in (set(pb) | set(pc)):
                why += ("; batch samples are never timed (a batch answer's time is the provider's queue): "
                        "gate latency on a run without batch mode")
            if "recorded" in (set(pb) | set(pc)) and not compare_recorded:
                why += ("; a recorded (production) side is compared only with decision.compare_recorded: "
                        "true")
            for m in timed:
                unknown[m] = why
            report.append(why)
        elif pairs < n:
            note = f"compared on the {pairs} of {n} paired cases timed live on both sides ({where})"
            for m in timed:
                notes.setdefault(m, []).append(note)
            report.append(f"latency {note}")
        for m in timed:
            notes.setdefault(m, []).extend(label)
        if label:
            report.extend(label)
    costed = [m for m in mb if m.startswith(COSTED) and m in mc]
    batched = [s for s, p in (("baseline", pb), ("candidate", pc)) if np.any(p == "batch")]
    if costed and len(batched) == 1:
        note = (f"the {batched[0]} has batch answers, priced at the provider's batch rate where known "
                "(about half): its cost difference is partly the price list, not the variant")
        for m in costed:
            notes.setdefault(m, []).append(note)
        report.append(note)
    recorded_side = [s for s, p in (("baseline", pb), ("candidate", pc)) if np.any(p == "recorded")]
    if costed and recorded_side:
        if compare_recorded:
            label = (f"{' and '.join(recorded_side)} cost is production's (recorded): compared because "
                     "decision.compare_recorded is true")
            for m in costed:
                notes.setdefault(m, []).append(label)
            report.append(label)
        else:
            why = (f"cost not compared: the {' and '.join(recorded_side)} cost is production's (recorded), "
                   "another price list and caching; set decision.compare_recorded: true to compare it")
            for m in costed:
                unknown[m] = why
            report.append(why)
    return unknown, notes, report


def _cases_with(series: MetricSeries, ok: np.ndarray, to_paired: np.ndarray, n: int) -> np.ndarray:
    """Paired cases (pairing order) that have an allowed sample with a value."""
    pc = to_paired[series.case_index]
    keep = (pc >= 0) & ok & np.isfinite(series.values)
    return np.bincount(pc[keep], minlength=n) > 0 if n else np.zeros(0, dtype=bool)


def _masked(series: MetricSeries, ok: np.ndarray, to_paired: np.ndarray, pair_ok: np.ndarray) -> MetricSeries:
    pc = to_paired[series.case_index]
    in_pair = np.zeros(pc.size, dtype=bool)
    paired = pc >= 0
    in_pair[paired] = pair_ok[pc[paired]] if pair_ok.size else False
    return replace(series, values=np.where(ok & in_pair, series.values, np.nan))
