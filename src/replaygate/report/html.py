"""A self-contained HTML page: verdict, gates, metrics, the worst regressions with both outputs,
and distribution plots of latency, cost and scores (inline SVG, no script, nothing fetched).

Every string that comes from a run (model text, case ids, scorer reasons, names) goes through
``escape`` (``html.escape``, control characters dropped). The markup is well-formed XML (all tags closed, no named entities besides the
XML ones) so the page also parses as XHTML, which the tests check.
"""
from __future__ import annotations

import html
import re
from typing import Any, Iterable

import numpy as np

from . import fmt
from .terminal import verdict_line

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def escape(text: Any) -> str:
    """Escaped for HTML text and attributes; control characters (invalid in XML, and nothing
    a reader wants) removed."""
    return html.escape(_CONTROL.sub("", str(text)))

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em}
.verdict{padding:.6em 1em;border-radius:6px;font-weight:600}
.pass{background:#e6f4ea;color:#0b6b2b}.fail{background:#fde8e8;color:#a50e0e}.inconclusive{background:#fff4e5;color:#8a4b00}
table{border-collapse:collapse;margin:.5em 0;font-variant-numeric:tabular-nums}
th,td{border-bottom:1px solid #ddd;padding:.3em .7em;text-align:right}th:first-child,td:first-child{text-align:left}
td.v-pass{color:#0b6b2b}td.v-fail{color:#a50e0e;font-weight:600}td.v-inconclusive{color:#8a4b00}
pre{background:#f6f8fa;padding:.6em;overflow-x:auto;white-space:pre-wrap;word-break:break-word;max-height:24em}
.plots{display:flex;flex-wrap:wrap;gap:1.5em}.plot{flex:0 0 auto}
.legend span{display:inline-block;width:.9em;height:.9em;margin:0 .3em 0 1em;vertical-align:middle}
.note{color:#666}
"""
_BASE, _CAND = "#4e79a7", "#f28e2b"


def render_comparison(doc: dict, runs: tuple[dict, dict] | None = None, max_cases: int = 10) -> str:
    verdict = str(doc.get("verdict", ""))
    out = [_head("replaygate: " + verdict),
           "<h1>replaygate comparison</h1>",
           f'<p class="verdict {_cls(verdict)}">{escape(verdict_line(doc))}</p>']
    names = [escape(str((doc.get(side) or {}).get("name", side))) for side in ("baseline", "candidate")]
    out.append(f"<p>baseline <b>{names[0]}</b> vs candidate <b>{names[1]}</b>, "
               f"{int(doc.get('n_paired', 0))} paired cases</p>")
    if doc.get("gates"):
        out.append("<h2>Gates</h2>")
        rows = [[*r[:-1], (r[-1], f"v-{_cls(r[-1])}")] for r in fmt.gate_rows(doc)]
        out.append(_table(fmt.GATE_HEADERS, rows))
    out.append("<h2>Metrics</h2>")
    out.append(_table(fmt.METRIC_HEADERS, fmt.metric_rows(doc)))
    out.append("<h2>Distributions</h2>")
    if runs:
        out.append(_legend(names))
        out.append(_plots([_samples(runs[0]), _samples(runs[1])]))
    else:
        out.append('<p class="note">The plots need the runs: <code>replaygate gate --format html</code> or '
                   "<code>replaygate compare BASE.json CAND.json --format html</code>.</p>")
    regs = doc.get("regressions") or []
    if regs:
        out.append(f"<h2>Worst regressions ({min(len(regs), max_cases)} of {len(regs)})</h2>")
        for r in regs[:max_cases]:
            out.append(_regression(r))
    for w in doc.get("warnings") or []:
        out.append(f'<p class="note">warning: {escape(str(w))}</p>')
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def render_run(doc: dict) -> str:
    name = str((doc.get("variant") or {}).get("name", "?"))
    out = [_head(f"replaygate run: {name}"), f"<h1>replaygate run: {escape(name)}</h1>"]
    if not doc.get("complete", True):
        out.append('<p class="verdict fail">Incomplete run: some cases were not replayed.</p>')
    out.append(_table(["metric", "value"], [[k, fmt.value(k, v)] for k, v in (doc.get("summary") or {}).items()]))
    out.append("<h2>Distributions</h2>")
    out.append(_plots([_samples(doc)]))
    for w in doc.get("warnings") or []:
        out.append(f'<p class="note">warning: {escape(str(w))}</p>')
    out.append("</body></html>")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------

def _head(title: str) -> str:
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"/>'
            f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>")


def _cls(verdict: str) -> str:
    return verdict if verdict in ("pass", "fail", "inconclusive") else "note"


def _table(headers: list[str], rows: Iterable[list[Any]]) -> str:
    out = ["<table><thead><tr>" + "".join(f"<th>{escape(h)}</th>" for h in headers) + "</tr></thead><tbody>"]
    for row in rows:
        cells = []
        for c in row:
            text, cls = c if isinstance(c, tuple) else (c, None)
            attr = f' class="{cls}"' if cls else ""
            cells.append(f"<td{attr}>{escape(str(text))}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _regression(r: dict) -> str:
    head = f"<b>{escape(str(r.get('case')))}</b> ({escape(str(r.get('metric', '')))})"
    parts = [f"<details><summary>{head}: {escape(str(r.get('baseline')))} &#8594; "
             f"{escape(str(r.get('candidate')))}</summary>"]
    if r.get("input") is not None:
        parts.append(f"<p>input</p><pre>{escape(str(r['input']))}</pre>")
    diff = fmt.output_diff(r)
    if diff is not None:
        parts.append(f"<p>diff</p><pre>{escape(diff)}</pre>")
    parts.append("</details>")
    return "".join(parts)


def _legend(names: list[str]) -> str:
    return (f'<p class="legend"><span style="background:{_BASE}"></span>{names[0]}'
            f'<span style="background:{_CAND}"></span>{names[1]}</p>')


def _samples(run: dict) -> dict[str, list[float]]:
    """Per plotted metric, the values of every sample (errors and unknown costs left out)."""
    values: dict[str, list[float]] = {"latency.mean": [], "cost.mean": []}
    for case in run.get("cases") or []:
        for s in case.get("samples") or []:
            if s.get("error"):
                continue
            if isinstance(s.get("latency_ms"), (int, float)):
                values["latency.mean"].append(float(s["latency_ms"]))
            if isinstance(s.get("cost_usd"), (int, float)):
                values["cost.mean"].append(float(s["cost_usd"]))
            for name, sc in (s.get("scores") or {}).items():
                if isinstance(sc, dict) and isinstance(sc.get("score"), (int, float)):
                    values.setdefault(f"score.{name}.mean", []).append(float(sc["score"]))
    return values


_TITLES = {"latency.mean": "latency per call", "cost.mean": "cost per call"}


def _plots(series: list[dict[str, list[float]]]) -> str:
    metrics = [m for m in series[0] if any(s.get(m) for s in series)]
    if not metrics:
        return '<p class="note">No samples to plot.</p>'
    return '<div class="plots">' + "".join(_histogram(m, [s.get(m, []) for s in series]) for m in metrics) + "</div>"


def _histogram(metric: str, groups: list[list[float]], width: int = 320, height: int = 150) -> str:
    """Overlaid histograms on shared bins (numpy's automatic bin edges of all the values)."""
    allv = np.concatenate([np.asarray(g, dtype=float) for g in groups if g])
    lo, hi = float(allv.min()), float(allv.max())
    if metric.startswith("score.") and 0.0 <= lo and hi <= 1.0:
        edges = np.linspace(0.0, 1.0, 11)  # scores live in [0, 1]: tenths read best
    elif hi > lo:
        edges = np.histogram_bin_edges(allv, bins="auto")
    else:
        edges = np.array([lo - 0.5, hi + 0.5])
    if len(edges) > 41:  # keep bars visible
        edges = np.linspace(edges[0], edges[-1], 41)
    counts = [np.histogram(np.asarray(g, dtype=float), bins=edges)[0] if g else np.zeros(len(edges) - 1, int)
              for g in groups]
    peak = max(int(c.max()) for c in counts) or 1
    pad_l, pad_b, pad_t = 8, 22, 6
    plot_w, plot_h = width - 2 * pad_l, height - pad_b - pad_t
    bw = plot_w / (len(edges) - 1)
    title = _TITLES.get(metric, metric.removeprefix("score.").removesuffix(".mean") + " score")
    svg = [f'<figure class="plot"><figcaption>{escape(title)} ({", ".join(str(len(g)) for g in groups)} samples)'
           f'</figcaption><svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'role="img" data-metric="{escape(metric)}">']
    colors = (_BASE, _CAND) if len(groups) > 1 else (_BASE,)
    for gi, (c, color) in enumerate(zip(counts, colors)):
        for i, n in enumerate(c):
            if not n:
                continue
            h = plot_h * int(n) / peak
            x = pad_l + i * bw + (gi * bw / len(groups))
            svg.append(f'<rect x="{x:.1f}" y="{pad_t + plot_h - h:.1f}" width="{max(bw / len(groups) - 1, 1):.1f}" '
                       f'height="{h:.1f}" fill="{color}" fill-opacity="0.85" data-group="{gi}" data-count="{int(n)}">'
                       f"<title>{int(n)} in [{escape(fmt.value(metric, float(edges[i])))}, "
                       f"{escape(fmt.value(metric, float(edges[i + 1])))}{']' if i == len(c) - 1 else ')'}"
                       "</title></rect>")
    y_axis = pad_t + plot_h
    svg.append(f'<line x1="{pad_l}" y1="{y_axis}" x2="{width - pad_l}" y2="{y_axis}" stroke="#999"/>')
    for x, anchor, v in ((pad_l, "start", edges[0]), (width - pad_l, "end", edges[-1])):
        svg.append(f'<text x="{x}" y="{height - 6}" font-size="11" text-anchor="{anchor}" fill="#555">'
                   f"{escape(fmt.value(metric, float(v)))}</text>")
    svg.append("</svg></figure>")
    return "".join(svg)
