"""Before a run: can each gate decide anything with this many cases? (pure; no I/O)

Only what is known without running is used — the number of cases, the gate's rule, mode and
confidence, and Holm's family size — so the check covers the gates on pass/fail rates, whose
noise is bounded: a change gate (``max_decrease`` / ``max_increase`` in points) and a bound gate
(``min`` / ``max``). Continuous metrics need the variance of a run: `replaygate calibrate`.
The statistics are the gates' own (``stats.tango_interval``, ``stats.mde_paired_proportion``,
``stats.clopper_pearson``), at the most favourable noise (no case flips by chance), so a warning
here holds for any real run.
"""
from __future__ import annotations

from . import stats as st
from .gates import Gate, parse_gates

MAX_CASES = 1_000_000  # beyond this "how many cases would decide it" is not worth saying


def _is_rate(metric: str) -> bool:
    return metric == "quality.pass_rate" or metric.endswith(".pass_rate") or metric in (
        "errors.rate", "scoring.errors.rate", "finish.length.rate")


def _alpha(g: Gate, family: int, holm: bool) -> float:
    """The level of the gate's test at its first Holm step (what the reports' MDE uses)."""
    return g.alpha / max(family, 1) if (g.mode == "significant" and holm) else g.alpha


def _smallest_n(ok) -> int | None:
    """The smallest number of cases for which ``ok`` holds (it is monotone), None past MAX_CASES
    (e.g. a tolerance of 0, which no number of cases can show is held)."""
    def holds(k: int) -> bool:
        try:
            return bool(ok(k))
        except (OverflowError, ValueError, ZeroDivisionError):
            return False

    lo, hi = 1, 2
    while not holds(hi):
        lo, hi = hi, hi * 2
        if hi > MAX_CASES:
            return None
    while lo + 1 < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if holds(mid) else (mid, hi)
    return hi


def _pts(x: float) -> str:
    return f"{100 * x:.1f} pts"


def gate_sensitivity(gates: list[dict], decision: dict, n: int) -> list[tuple[int, str]]:
    """(gate index, warning) for each rate gate that ``n`` paired cases cannot decide:

    - a change gate that cannot fail even if every case regressed (the interval of an all-flip
      table still reaches within the tolerance);
    - a change gate whose interval, with no noise at all, is wider than its tolerance: the
      smallest change it could detect is larger than the change it is asked to hold, so it can
      never pass and ends inconclusive unless the change is large;
    - a bound gate that cannot pass even with no event at all (``max``) / every case passing
      (``min``), so it stays inconclusive.
    """
    rules = parse_gates(gates, decision)
    holm = bool(decision.get("holm", True))
    family = sum(1 for g in rules if g.mode == "significant")
    out = []
    for g in rules:
        if not _is_rate(g.metric) or g.relative or n <= 0 or g.mode == "point":
            continue  # point mode decides on the observed value alone
        a = _alpha(g, family, holm)
        name = f"gate {g.metric} {g.text}"
        inconclusive = "passes" if g.mode == "significant" else "fails"
        if g.rule in ("max_decrease", "max_increase"):
            tau = g.amount
            if not -st.tango_interval(0, n, n, a, st.CONTINUITY)[1] > tau:  # every case flipped the bad way
                need = _smallest_n(lambda k: -st.tango_interval(0, k, k, a, st.CONTINUITY)[1] > tau)
                out.append((g.index, f"{name} cannot fail with {n} cases: even if every case regressed, the "
                                     "interval would not lie beyond the tolerance"
                                     + (f"; it needs at least {need}" if need else "")))
            elif not st.tango_interval(0, 0, n, a, st.CONTINUITY)[1] < tau:  # nothing changed at all
                need = _smallest_n(lambda k: st.tango_interval(0, 0, k, a, st.CONTINUITY)[1] < tau)
                mde = tau + st.mde_paired_proportion(0.0, n, a)
                out.append((g.index, f"{name} cannot pass with {n} cases: even with identical answers the "
                                     f"interval (±{_pts(st.tango_interval(0, 0, n, a, st.CONTINUITY)[1])}) is wider than the "
                                     f"tolerance, and only a change of about {_pts(mde)} or more is caught "
                                     f"(80% power); it ends inconclusive ({inconclusive} in {g.mode} mode) — "
                                     + (f"about {need} cases can decide it" if need else "loosen it")))
        else:
            best = st.clopper_pearson(0, n, a) if g.rule == "max" else st.clopper_pearson(n, n, a)
            if not (best[1] < g.amount if g.rule == "max" else best[0] > g.amount):
                if g.rule == "max":
                    need = _smallest_n(lambda k: st.clopper_pearson(0, k, a)[1] < g.amount)
                else:
                    need = _smallest_n(lambda k: st.clopper_pearson(k, k, a)[0] > g.amount)
                out.append((g.index, f"{name} cannot pass with {n} cases: even a perfect run leaves the interval "
                                     f"across {g.amount:g}, so it ends inconclusive ({inconclusive} in {g.mode} "
                                     "mode)" + (f"; about {need} cases can decide it" if need else "")))
    return out
