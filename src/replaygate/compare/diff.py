"""Case-level differences: which cases regressed or improved (pure; no I/O).

A case regressed when its pass share (``quality.pass_rate`` per case: the share of its samples
that passed every counting scorer) is lower in the candidate than in the baseline; with one
sample per case that is "passed in baseline, fails in candidate". Outputs are truncated here;
escaping for a given page is the renderer's job.
"""
from __future__ import annotations

import numpy as np

from ..model import CaseResult, Run

MAX_TEXT = 500


def truncate(text: str | None, limit: int = MAX_TEXT) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[:limit] + f"... [{len(text) - limit} more characters]"


def _failed_scorers(case: CaseResult, counting: set[str]) -> list[dict]:
    """Scorers that failed on any sample of the case, with the first reason seen."""
    seen: dict[str, dict] = {}
    for s in case.samples:
        if s.error is not None and "error" not in seen:
            seen["error"] = {"scorer": None, "reason": f"{s.error.type}: {truncate(s.error.message, 200)}"}
        for name, sc in s.scores.items():
            if name in counting and sc.passed is not True and name not in seen:
                seen[name] = {"scorer": name, "reason": truncate(sc.reason, 200)}
    return list(seen.values())


def _first_output(case: CaseResult) -> str | None:
    for s in case.samples:
        if s.output is not None:
            return s.output
    return None


def case_changes(base: Run, cand: Run, base_pos, cand_pos, base_pass, cand_pass,
                 counting: set[str], limit: int = 200) -> dict:
    """Regressions and improvements of the per-case pass share, largest change first.

    ``base_pos``/``cand_pos``: run positions of the paired cases; ``base_pass``/``cand_pass``:
    their per-case pass shares in pairing order (NaN where a side has no sample). Lists are cut
    at ``limit`` entries each; the totals are always reported.
    """
    b, c = np.asarray(base_pass, dtype=float), np.asarray(cand_pass, dtype=float)
    with np.errstate(invalid="ignore"):
        change = c - b  # NaN where a side has no value: neither a regression nor an improvement
        kinds = (("regressions", np.flatnonzero(change < 0)), ("improvements", np.flatnonzero(change > 0)))
    out = {"n_regressions": int(kinds[0][1].size), "n_improvements": int(kinds[1][1].size)}
    for key, ks in kinds:
        ks = sorted(ks.tolist(), key=lambda k: (-abs(change[k]), base.cases[base_pos[k]].id))[:limit]
        entries = []
        for k in ks:
            bc, cc = base.cases[base_pos[k]], cand.cases[cand_pos[k]]
            entries.append({"case": bc.id, "metric": "quality.pass_rate", "baseline": float(b[k]),
                            "candidate": float(c[k]), "input": truncate(bc.input or cc.input),
                            "expected": truncate(str(bc.expected)) if bc.expected is not None else None,
                            "baseline_output": truncate(_first_output(bc)),
                            "candidate_output": truncate(_first_output(cc)),
                            "failed": _failed_scorers(cc if key == "regressions" else bc, counting)})
        out[key] = entries
    return out
