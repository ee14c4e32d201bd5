"""Number formatting shared by the renderers: units follow the metric's family."""
from __future__ import annotations

import math
from typing import Any


def is_rate(metric: str) -> bool:
    return metric.endswith(("pass_rate", "win_rate", ".rate"))  # errors.rate, finish.length.rate, ...


def value(metric: str, v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    if not isinstance(v, (int, float)):
        return str(v)
    if is_rate(metric):
        return f"{100 * v:.1f}%"
    if metric.startswith(("latency.", "ttft.")):
        return f"{v:,.0f} ms" if abs(v) >= 100 else f"{v:.1f} ms"
    if metric.startswith("cost."):
        return f"${v:.3g}" if abs(v) < 1 else f"${v:,.2f}"
    if metric.startswith("tokens."):
        return f"{v:,.1f}"
    return f"{v:.3f}"


def delta(metric: str, d: Any, base: Any = None) -> str:
    if d is None or (isinstance(d, float) and math.isnan(d)):
        return "n/a"
    if is_rate(metric):
        s = f"{100 * d:+.1f} pts"
    elif metric.startswith(("latency.", "ttft.")):
        s = f"{d:+.1f} ms"
    elif metric.startswith("cost."):
        s = f"{d:+.3g} $"
    else:
        s = f"{d:+.3f}"
    if isinstance(base, (int, float)) and base and not is_rate(metric):
        s += f" ({100 * d / base:+.1f}%)"
    return s


def _signed(v: float, spec: str) -> str:
    """``format(v, spec)`` without a "-0" for a value that rounds to zero ("[+0.0, -0.0]")."""
    s = format(v, spec)
    return "+" + s[1:] if s.startswith("-") and float(s) == 0 else s


def interval(metric: str, ci: Any, kind: str | None = None) -> str:
    if not ci or ci[0] is None or ci[1] is None:
        return "n/a"
    lo, hi = ci
    if kind == "ratio":
        return f"[{lo:.3f}×, {hi:.3f}×]"
    if is_rate(metric):
        return f"[{_signed(100 * lo, '+.1f')}, {_signed(100 * hi, '+.1f')}] pts"
    return f"[{_signed(lo, '+.4g')}, {_signed(hi, '+.4g')}]"


def pvalue(p: Any) -> str:
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "n/a"
    if p < 1e-4:
        return f"{p:.1e}"
    return f"{p:.4f}" if p < 0.01 else f"{p:.3f}"


def gate_interval(metric: str, gate: dict) -> str:
    """A gate's interval in the scale it was decided on: a relative change for "N%" rules,
    the metric's own units otherwise."""
    ci = gate.get("ci")
    if not ci or ci[0] is None or ci[1] is None:
        return "n/a"
    if gate.get("scale") == "relative":
        return f"[{_signed(100 * ci[0], '+.1f')}%, {_signed(100 * ci[1], '+.1f')}%]"
    if gate.get("scale") == "value":
        return f"[{value(metric, ci[0])}, {value(metric, ci[1])}]"
    return interval(metric, ci, gate.get("ci_kind"))


def gate_mde(metric: str, gate: dict) -> str:
    """The smallest change the gate catches with 80% power, in the gate's scale."""
    mde = gate.get("mde")
    if mde is None or gate.get("scale") not in ("difference", "relative"):
        return "n/a"
    if gate["scale"] == "relative":
        return f"{100 * mde:.1f}%"
    if is_rate(metric):
        return f"{100 * mde:.1f} pts"
    return value(metric, mde)


def provenance_line(doc: dict) -> str | None:
    """'Measured: baseline 100% cache; candidate 100% live' from the sides' provenance shares."""
    sides = []
    for side in ("baseline", "candidate"):
        sh = (doc.get(side) or {}).get("provenance") or {}
        parts = [f"{100 * sh[k]:.0f}% {k}" for k in ("live", "cache", "recorded", "batch") if sh.get(k)]
        if parts:
            sides.append(f"{side} {', '.join(parts)}")
    return ("Measured: " + "; ".join(sides)) if sides else None


METRIC_HEADERS = ["metric", "baseline", "candidate", "delta", "interval", "p", "n"]
GATE_HEADERS = ["gate", "mode", "baseline", "candidate", "delta", "interval", "detects (80%)", "verdict"]


def metric_rows(doc: dict) -> list[list[str]]:
    """One row of formatted cells per metric of a comparison (renderers escape or style them)."""
    return [[name, value(name, m.get("baseline")), value(name, m.get("candidate")),
             delta(name, m.get("delta"), m.get("baseline")), interval(name, m.get("ci"), m.get("ci_kind")),
             pvalue(m.get("p_value")), str(m.get("n", ""))]
            for name, m in doc.get("metrics", {}).items()]


def gate_rows(doc: dict) -> list[list[str]]:
    """One row per gate; the last cell is the raw verdict (pass / fail / inconclusive)."""
    rows = []
    for g in doc.get("gates", []):
        m = g.get("metric", "")
        rows.append([f"{m} {g.get('rule', '')}".strip(), g.get("mode", ""), value(m, g.get("baseline")),
                     value(m, g.get("candidate")), delta(m, g.get("delta"), g.get("baseline")),
                     gate_interval(m, g), gate_mde(m, g), str(g.get("verdict", ""))])
    return rows


def output_diff(regression: dict) -> str | None:
    """The unified diff of a regression's baseline and candidate outputs (None when either is
    not text); renderers escape or fence it."""
    b, c = regression.get("baseline_output"), regression.get("candidate_output")
    if not (isinstance(b, str) and isinstance(c, str)):
        return None
    import difflib

    diff = "\n".join(difflib.unified_diff(b.splitlines(), c.splitlines(), "baseline", "candidate",
                                          lineterm=""))
    return diff or "(outputs identical)"


def provenance(side: dict) -> str:
    """Where a side's outputs came from, as shares: "100% cache", "60% live, 40% cache"."""
    shares = side.get("provenance") or {}
    return ", ".join(f"{100 * v:.0f}% {k}" for k, v in sorted(shares.items(), key=lambda kv: -kv[1]) if v)


def side_parts(side: dict) -> list[tuple[str, str]]:
    """(label, text) facts about one side of a comparison, for the reports' "compared" lines:
    what produced the outputs, the commit, prompts read from git refs, and the provenance."""
    parts = []
    kind, model = side.get("kind"), side.get("model")
    if kind == "recorded":
        parts.append(("outputs", "recorded in the traces"))
    elif kind == "run":
        parts.append(("outputs", "a stored run"))
    elif model:
        parts.append(("callable" if kind == "callable" else "model", str(model)))
    git = side.get("git") or {}
    if git.get("commit"):
        where = [str(git[k]) for k in ("ref", "branch") if git.get(k)]
        if git.get("dirty"):
            where.append("uncommitted changes")
        parts.append(("commit", str(git["commit"])[:10] + (f" ({', '.join(where)})" if where else "")))
    for k, ref in (side.get("prompt_refs") or {}).items():
        parts.append((f"prompt {k}", str(ref)))
    if side.get("git_refs"):
        parts.append(("refs", ", ".join(f"{r} = {sha[:10]}" for r, sha in side["git_refs"].items())))
    prov = provenance(side)
    if prov:
        parts.append(("samples", f"{side.get('n_samples', '?')}: {prov}"))
    return parts


def failed_reasons(regression: dict) -> list[str]:
    """'scorer: reason' for each scorer that failed a regressed case (errors as 'error: ...')."""
    return [f"{f.get('scorer') or 'error'}: {f.get('reason') or 'failed'}" for f in regression.get("failed") or []]
