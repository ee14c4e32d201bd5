"""Is the comparison complete? Coverage and completeness are part of the verdict (pure; no I/O).

A pass must mean the candidate was measured on the cases the baseline names. So a comparison
is *incomplete* (verdict ``incomplete``, exit 3, whatever the gates say) when:

* either run is incomplete (``complete: false``: the replay stopped, or a scorer could not score);
* no case is in both runs;
* the candidate pairs fewer of the baseline's cases than ``decision.min_coverage`` (default 1.0:
  every one).

Exit 3, not 1: nothing says the candidate is worse, only that it was not (fully) measured, and
``gate`` already exits 3 when a replay is incomplete; the same runs compared later with
``compare`` give the same exit code. Gates are still evaluated on the cases that were paired and
reported, so a user sees what the partial evidence says.
"""
from __future__ import annotations

from ..errors import ConfigError
from ..model import Run

DEFAULT_MIN_COVERAGE = 1.0
LISTED_IDS = 20  # missing ids named in the report (all are in only_in_baseline)


def min_coverage_of(decision: dict) -> float:
    value = decision.get("min_coverage", DEFAULT_MIN_COVERAGE)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ConfigError(f"must be a share from 0 to 1, got {value!r}", field="decision.min_coverage")
    return float(value)


def coverage(base: Run, cand: Run, n_paired: int, only_b: list[str], only_c: list[str],
             min_coverage: float) -> dict:
    """The comparison's ``coverage`` object; ``problems`` lists why it is incomplete (empty when
    it is not)."""
    n_base = len(base.cases)
    share = n_paired / n_base if n_base else 0.0
    problems: list[str] = []
    for side, run in (("baseline", base), ("candidate", cand)):
        if not run.complete:
            why = "; ".join(run.incomplete_reasons) or "the run stopped before every case was replayed"
            problems.append(f"the {side} run is incomplete (complete: false): {why}")
    if n_paired == 0:
        problems.append(f"no case is in both runs (baseline {n_base} cases, candidate {len(cand.cases)}): "
                        "nothing was compared")
    elif share < min_coverage - 1e-12:
        listed = ", ".join(only_b[:LISTED_IDS]) + (" ..." if len(only_b) > LISTED_IDS else "")
        problems.append(f"the candidate covers {n_paired} of the baseline's {n_base} cases ({share:.1%}), "
                        f"below decision.min_coverage {min_coverage:g}: {len(only_b)} missing ({listed})")
    return {"baseline_cases": n_base, "candidate_cases": len(cand.cases), "paired": n_paired,
            "share": share, "min_coverage": min_coverage, "missing": len(only_b),
            "missing_ids": only_b[:LISTED_IDS], "extra": len(only_c),
            "complete": {"baseline": base.complete, "candidate": cand.complete},
            "problems": problems}
