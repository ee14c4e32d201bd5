"""Synthetic runs built from arrays, for simulations, benchmarks and tests (no model calls)."""
from __future__ import annotations

import numpy as np

from ..model import CaseResult, ErrorInfo, Run, Sample, Score, ScorerInfo


def make_run(passed: np.ndarray, latency: np.ndarray | None = None, score: np.ndarray | None = None,
             cost: np.ndarray | None = None, errors: np.ndarray | None = None,
             ids: list[str] | None = None, name: str = "variant", tokens: tuple[int, int] = (100, 20),
             ttft: np.ndarray | None = None) -> Run:
    """A Run whose arrays are shaped (cases,) or (cases, repeats).

    ``passed`` drives a pass/fail scorer ``ok``; ``score`` (default: passed as 0/1) a scored
    scorer ``sim`` with threshold 0.5; ``errors`` marks samples that failed (no output).
    """
    passed = np.atleast_2d(np.asarray(passed).T).T if np.ndim(passed) == 1 else np.asarray(passed)
    n, r = passed.shape

    def shape(a, default):
        if a is None:
            return np.broadcast_to(np.asarray(default, dtype=float), (n, r))
        a = np.asarray(a, dtype=float)
        return a[:, None].repeat(r, axis=1) if a.ndim == 1 and r > 1 else a.reshape(n, r)

    lat = shape(latency, 500.0)
    sc = shape(score, passed.astype(float))
    cst = None if cost is None else np.asarray(cost, dtype=object).reshape(n, r)
    err = shape(errors, 0.0)
    tt = None if ttft is None else shape(ttft, 0.0)
    ids = ids or [f"c{i:06d}" for i in range(n)]
    cases = []
    for i in range(n):
        samples = []
        for j in range(r):
            if err[i, j]:
                samples.append(Sample(repeat=j, error=ErrorInfo("Timeout", "timed out"), latency_ms=float(lat[i, j])))
                continue
            p = bool(passed[i, j])
            s = float(sc[i, j])
            samples.append(Sample(
                repeat=j, output=f"answer {i} {'right' if p else 'wrong'}", finish_reason="stop",
                latency_ms=float(lat[i, j]), ttft_ms=None if tt is None else float(tt[i, j]),
                input_tokens=tokens[0], output_tokens=tokens[1],
                cost_usd=(1e-4 if cst is None else cst[i, j]),
                scores={"ok": Score(1.0 if p else 0.0, p, "ok" if p else "expected text missing"),
                        "sim": Score(s, s >= 0.5, f"similarity {s:.2f}")}))
        cases.append(CaseResult(id=ids[i], input=f"question {i}", expected=f"answer {i}", samples=samples))
    return Run(variant={"name": name}, cases=cases,
               scorers=[ScorerInfo("ok", "contains"),
                        ScorerInfo("sim", "similarity", informational=True, threshold=0.5)])
