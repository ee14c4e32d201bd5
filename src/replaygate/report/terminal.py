"""Terminal tables (tabulate) for people reading a CI log."""
from __future__ import annotations

from typing import Any

from tabulate import tabulate

from .. import safetext
from . import fmt


def verdict_line(doc: dict) -> str:
    """One line that agrees with the exit code: what blocked (failed gates, gates not decided in
    noninferior mode, an incomplete measurement) and what could not be decided."""
    gates = doc.get("gates", [])
    failed = [g["metric"] for g in gates if g.get("verdict") == "fail"]
    blocked = [g["metric"] for g in gates if g.get("verdict") == "inconclusive" and g.get("passed") is False]
    undecided = [g["metric"] for g in gates if g.get("verdict") == "inconclusive" and g.get("passed") is not False]
    verdict = str(doc.get("verdict", "")).upper()
    parts = [f"Verdict: {verdict} (exit {doc.get('exit_code', '?')})"]
    problems = (doc.get("coverage") or {}).get("problems") or []
    if problems:
        parts.append("not a pass: " + "; ".join(problems))
    if not gates:
        parts.append("no gates configured")
    else:
        if failed:
            parts.append(f"{len(failed)} of {len(gates)} gates failed: {', '.join(failed)}")
        if blocked:
            parts.append(f"not decided, which fails in noninferior mode: {', '.join(blocked)}")
        if undecided:
            parts.append(f"not decided (see why; passes in {_mode_of(doc, undecided)} mode): "
                         f"{', '.join(undecided)}")
        if not (failed or blocked or undecided):
            parts.append(f"all {len(gates)} gates passed")
        elif not (failed or blocked):
            parts.append("no gate failed")
    return " — ".join(parts)


def _mode_of(doc: dict, metrics: list[str]) -> str:
    modes = {g.get("mode") for g in doc.get("gates", []) if g.get("metric") in metrics}
    return "/".join(sorted(m for m in modes if m)) or "significant"


def render_comparison(doc: dict, **_: Any) -> str:
    out = []
    n = doc.get("n_paired", 0)
    only_b, only_c = len(doc.get("only_in_baseline", [])), len(doc.get("only_in_candidate", []))
    out.append(f"Compared {n} paired cases ({only_b} only in baseline, {only_c} only in candidate)")
    measured = fmt.provenance_line(doc)
    if measured:
        out.append(measured)
    out.append("")
    out.append(tabulate(fmt.metric_rows(doc), headers=fmt.METRIC_HEADERS, disable_numparse=True))
    if doc.get("gates"):
        out.append("")
        out.append(_gate_heading(doc))
        rows = [[*r[:-1], r[-1].upper()] for r in fmt.gate_rows(doc)]
        out.append(tabulate(rows, headers=fmt.GATE_HEADERS, disable_numparse=True))
        reasons = [f"  {g['metric']}: {safetext.line(g['reason'])}" for g in doc["gates"] if g.get("reason")]
        if reasons:
            out.extend(["", "Why:", *reasons])
    regs = doc.get("regressions", [])
    if regs:
        out.append("")
        out.append(f"Cases that regressed ({len(regs)}; worst first):")
        for r in regs[:10]:
            why = "; ".join(f"{f.get('scorer')}: {f.get('reason')}" for f in r.get("failed") or [])
            out.append(f"  {safetext.line(r.get('case'))}: {_short(why or r.get('metric', ''), 50)}")
            if "candidate_output" in r:
                rep = r.get("candidate_repeat")
                label = f"candidate (repeat {rep})" if rep else "candidate"  # the repeat that failed
                out.append(f"      {label}: {_short(r.get('candidate_output'), 90)}")
        if len(regs) > 10:
            out.append(f"  ... and {len(regs) - 10} more (the json report lists them all)")
    for w in doc.get("warnings", []):
        out.append(f"warning: {safetext.line(w)}")
    out.append("")
    out.append(verdict_line(doc))
    return "\n".join(out) + "\n"


def _gate_heading(doc: dict) -> str:
    d = doc.get("decision", {})
    conf = d.get("confidence")
    heading = "Gates"
    bits = []
    if d.get("mode"):
        bits.append(f"default mode {d['mode']}")
    if conf:
        bits.append(f"{100 * conf:g}% intervals")
    holm = doc.get("holm") or d.get("holm")
    if holm:
        bits.append("Holm-adjusted across gates")
    return heading + (f" ({', '.join(bits)})" if bits else "")


def _short(v: Any, width: int = 60) -> str:
    return safetext.line(v if isinstance(v, str) else repr(v), width)  # model text: no escapes


def render_run(doc: dict) -> str:
    variant = doc.get("variant", {})
    cases = doc.get("cases", [])
    n_samples = sum(len(c.get("samples", [])) for c in cases)
    errors = sum(1 for c in cases for s in c.get("samples", []) if s.get("error"))
    head = (f"Run of variant {safetext.line(variant.get('name', '?'))}: {len(cases)} cases, {n_samples} samples, "
            f"{errors} errors{'' if doc.get('complete', True) else ' — INCOMPLETE'}")
    rows = [[k, fmt.value(k, v)] for k, v in doc.get("summary", {}).items()]
    out = [head, "", tabulate(rows, headers=["metric", "value"], disable_numparse=True)]
    error_types: dict[str, int] = {}
    for c in cases:
        for s in c.get("samples", []):
            if s.get("error"):
                t = s["error"].get("type", "Error")
                error_types[t] = error_types.get(t, 0) + 1
    if error_types:
        out += ["", "Errors: " + ", ".join(f"{safetext.line(k)} × {v}" for k, v in sorted(error_types.items()))]
    for w in doc.get("warnings", []):
        out.append(f"warning: {safetext.line(w)}")
    return "\n".join(out) + "\n"
