"""Case-level differences: which cases regressed or improved (pure; no I/O).

A case regressed when its pass share (``quality.pass_rate`` per case: the share of its samples
that passed every counting scorer) is lower in the candidate than in the baseline; with one
sample per case that is "passed in baseline, fails in candidate". Outputs are truncated here;
escaping for a given page is the renderer's job.
"""
from __future__ import annotations

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


def case_changes(base: Run, cand: Run, pairs: list[tuple[int, int]], base_pass, cand_pass,
                 counting: set[str], limit: int = 200) -> dict:
    """Regressions and improvements of the per-case pass share, largest change first.

    ``pairs`` are (baseline case index, candidate case index); ``base_pass``/``cand_pass`` the
    per-case pass shares in pairing order (NaN where a side has no sample). Lists are cut at
    ``limit`` entries each; the totals are always reported.
    """
    reg, imp = [], []
    for k, (ib, ic) in enumerate(pairs):
        b, c = base_pass[k], cand_pass[k]
        if not (b == b and c == c) or b == c:  # NaN or no change
            continue
        (reg if c < b else imp).append((abs(c - b), k, ib, ic, b, c))
    out = {"n_regressions": len(reg), "n_improvements": len(imp)}
    for key, items in (("regressions", reg), ("improvements", imp)):
        items.sort(key=lambda t: (-t[0], base.cases[t[2]].id))
        entries = []
        for _, _, ib, ic, b, c in items[:limit]:
            bc, cc = base.cases[ib], cand.cases[ic]
            entries.append({"case": bc.id, "metric": "quality.pass_rate", "baseline": float(b),
                            "candidate": float(c), "input": truncate(bc.input or cc.input),
                            "expected": truncate(str(bc.expected)) if bc.expected is not None else None,
                            "baseline_output": truncate(_first_output(bc)),
                            "candidate_output": truncate(_first_output(cc)),
                            "failed": _failed_scorers(cc if key == "regressions" else bc, counting)})
        out[key] = entries
    return out
