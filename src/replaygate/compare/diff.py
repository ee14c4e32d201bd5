"""Case-level differences: which cases regressed or improved (pure; no I/O).

A case regressed when its pass share (``quality.pass_rate`` per case: the share of its samples
that passed every counting scorer) is lower in the candidate than in the baseline; with one
sample per case that is "passed in baseline, fails in candidate". Outputs are truncated here;
escaping for a given page is the renderer's job.
"""
from __future__ import annotations

import numpy as np

from ..model import CaseResult, Run, Sample

MAX_TEXT = 500


def truncate(text: str | None, limit: int = MAX_TEXT) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[:limit] + f"... [{len(text) - limit} more characters]"


def _failed(sample: Sample, counting: set[str]) -> list[dict]:
    """Why ``sample`` failed: its call error, and each counting scorer that scored it a fail (a
    scorer that could not score is missing, not a fail)."""
    out = []
    if sample.error is not None:
        out.append({"scorer": None, "reason": f"{sample.error.type}: {truncate(sample.error.message, 200)}"})
    for name, sc in sample.scores.items():
        if name in counting and sc.error is None and sc.passed is False:
            out.append({"scorer": name, "reason": truncate(sc.reason, 200)})
    return out


def _shown(case: CaseResult, counting: set[str], failing: bool) -> tuple[Sample | None, list[dict]]:
    """The sample to show for a case: with ``failing``, the first repeat that actually failed
    (its output next to its own reasons), else the first that passed; the first sample if none."""
    for s in case.samples:
        why = _failed(s, counting)
        if bool(why) == failing:
            return s, why
    first = case.samples[0] if case.samples else None
    return first, (_failed(first, counting) if first is not None else [])


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
            # a regression shows a candidate repeat that failed and a baseline one that passed;
            # an improvement the other way round
            bs, b_why = _shown(bc, counting, failing=key == "improvements")
            cs, c_why = _shown(cc, counting, failing=key == "regressions")
            entries.append({"case": bc.id, "metric": "quality.pass_rate", "baseline": float(b[k]),
                            "candidate": float(c[k]), "input": truncate(bc.input or cc.input),
                            "expected": truncate(str(bc.expected)) if bc.expected is not None else None,
                            "baseline_output": truncate(bs.output if bs is not None else None),
                            "candidate_output": truncate(cs.output if cs is not None else None),
                            "baseline_repeat": bs.repeat if bs is not None else None,
                            "candidate_repeat": cs.repeat if cs is not None else None,
                            "failed": c_why if key == "regressions" else b_why})
        out[key] = entries
    return out
