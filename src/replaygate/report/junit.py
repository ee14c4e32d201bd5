"""JUnit XML: gates and cases as test cases, so any CI shows them. ElementTree escapes all text."""
from __future__ import annotations

import xml.etree.ElementTree as ET

from . import fmt

# XML 1.0 forbids most control characters even when escaped, lone surrogates and the
# noncharacters U+FFFE/U+FFFF; model text may contain any of them. Controls are dropped, the
# others shown as U+FFFD (a surrogate could not even be encoded).
_BAD_XML = {c: None for c in range(32) if c not in (9, 10, 13)}
_BAD_XML.update({c: "\ufffd" for c in (*range(0xD800, 0xE000), 0xFFFE, 0xFFFF)})


def _clean(s: object) -> str:
    return str(s).translate(_BAD_XML)


def _xml(root: ET.Element) -> str:
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def render_comparison(doc: dict) -> str:
    root = ET.Element("testsuites", name="replaygate")
    # an incomplete measurement (exit 3) is an error a CI test view must show, not a green suite
    problems = (doc.get("coverage") or {}).get("problems") or []
    gates = doc.get("gates", [])
    blocking = [g for g in gates if g.get("passed") is False or g.get("verdict") == "fail"]
    suite = ET.SubElement(root, "testsuite", name="replaygate.gates", tests=str(len(gates) + bool(problems)),
                          failures=str(len(blocking)), errors=str(int(bool(problems))), skipped="0")
    if problems:
        tc = ET.SubElement(suite, "testcase", classname="replaygate.gates",
                           name="the candidate was measured on every baseline case")
        ET.SubElement(tc, "error", message="not (fully) measured", type="incomplete").text = _clean("\n".join(problems))
    for g in gates:
        m = g.get("metric", "")
        tc = ET.SubElement(suite, "testcase", classname="replaygate.gates",
                           name=_clean(f"{m} {g.get('rule', '')}".strip()))
        detail = (f"baseline {fmt.value(m, g.get('baseline'))}, candidate {fmt.value(m, g.get('candidate'))}, "
                  f"delta {fmt.delta(m, g.get('delta'), g.get('baseline'))}, "
                  f"interval {fmt.gate_interval(m, g)}, p {fmt.pvalue(g.get('p_value'))}, "
                  f"mode {g.get('mode', '')}, verdict {g.get('verdict')}")
        if g.get("verdict") == "fail":
            f = ET.SubElement(tc, "failure", message=_clean(f"{m} regressed"), type="regression")
            f.text = _clean(detail)
        elif g.get("passed") is False:  # not decided, which blocks in noninferior mode
            f = ET.SubElement(tc, "failure", message=_clean(f"{m} not shown non-inferior"), type="undecided")
            f.text = _clean(f"{detail}; {g.get('reason') or ''}")
        else:
            ET.SubElement(tc, "system-out").text = _clean(detail)
    regs = doc.get("regressions", [])
    cs = ET.SubElement(root, "testsuite", name="replaygate.cases", tests=str(len(regs)),
                       failures=str(len(regs)), errors="0", skipped="0")
    for r in regs:
        tc = ET.SubElement(cs, "testcase", classname="replaygate.cases", name=_clean(r.get("case")))
        f = ET.SubElement(tc, "failure", message=_clean(f"{r.get('metric', '')} regressed"), type="regression")
        f.text = _clean(f"baseline: {r.get('baseline_output', r.get('baseline'))}\n"
                        f"candidate: {r.get('candidate_output', r.get('candidate'))}")
    return _xml(root)


def render_run(doc: dict) -> str:
    root = ET.Element("testsuites", name="replaygate")
    cases = doc.get("cases", [])
    suite = ET.SubElement(root, "testsuite", name=_clean(f"replaygate.{doc.get('variant', {}).get('name', 'run')}"),
                          tests=str(len(cases)))
    failures = errors = 0
    for c in cases:
        tc = ET.SubElement(suite, "testcase", classname="replaygate.cases", name=_clean(c.get("id")))
        samples = c.get("samples", [])
        errs = [s["error"] for s in samples if s.get("error")]
        failed = [(s.get("repeat", 0), n, sc) for s in samples if not s.get("error")
                  for n, sc in (s.get("scores") or {}).items() if sc.get("passed") is False]
        if errs:
            errors += 1
            e = ET.SubElement(tc, "error", message=_clean(errs[0].get("message", "")),
                              type=_clean(errs[0].get("type", "Error")))
            e.text = _clean("\n".join(f"{x.get('type')}: {x.get('message')}" for x in errs))
        elif failed:
            failures += 1
            f = ET.SubElement(tc, "failure", message=_clean(", ".join(sorted({n for _, n, _ in failed}))),
                              type="scorer")
            f.text = _clean("\n".join(f"repeat {r}: {n}: {sc.get('reason', '')}" for r, n, sc in failed))
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    return _xml(root)
