"""A self-contained HTML page: verdict, what was compared (models, commits, where the outputs
came from), gates with their reasons, metrics, distribution plots of latency, cost and scores
(inline SVG), and every case side by side with filters and search (one inline script; nothing
is fetched).

Every string that comes from a run (model text, case ids, scorer reasons, names) goes through
``escape`` (``html.escape``, control characters dropped), so it is text, never markup. The markup
is well-formed XML (all tags closed, no named entities besides the XML ones, the script inside
a commented CDATA section) so the page also parses as XHTML, which the tests check.
"""
from __future__ import annotations

import html
import re
from typing import Any, Iterable

from .. import safetext
from . import fmt
from .terminal import verdict_line

_NOT_XML = re.compile("[\ud800-\udfff\ufffe\uffff]")  # lone surrogates, noncharacters


def escape(text: Any) -> str:
    """Escaped for HTML text and attributes. Control characters (invalid in XML), bidirectional
    overrides (they reorder what a reader sees) and lone surrogates (they cannot be written as
    UTF-8) become visible escapes such as ``\\x1b`` (``safetext.block``); lines are kept;
    U+FFFE/U+FFFF (invalid in XML) are shown as U+FFFD, so the page stays valid XHTML."""
    return html.escape(_NOT_XML.sub("\ufffd", safetext.block(text)))

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1400px;color:#222;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em}
.verdict{padding:.6em 1em;border-radius:6px;font-weight:600}
.pass{background:#e6f4ea;color:#0b6b2b}.fail{background:#fde8e8;color:#a50e0e}.inconclusive{background:#fff4e5;color:#8a4b00}
table{border-collapse:collapse;margin:.5em 0;font-variant-numeric:tabular-nums}
th,td{border-bottom:1px solid #ddd;padding:.3em .7em;text-align:right}th:first-child,td:first-child{text-align:left}
td.v-pass{color:#0b6b2b}td.v-fail{color:#a50e0e;font-weight:600}td.v-inconclusive{color:#8a4b00}
pre{background:#f6f8fa;padding:.6em;overflow-x:auto;white-space:pre-wrap;word-break:break-word;max-height:24em;margin:.3em 0}
.plots{display:flex;flex-wrap:wrap;gap:1.5em}.plot{flex:0 0 auto;margin:0}
.legend span{display:inline-block;width:.9em;height:.9em;margin:0 .3em 0 1em;vertical-align:middle}
.note{color:#666}
table.sides td,table.sides th{text-align:left;vertical-align:top}
ul.why{margin:.3em 0;padding-left:1.2em}ul.why li{margin:.2em 0}
.toolbar{position:sticky;top:0;background:#fff;padding:.5em 0;border-bottom:1px solid #ddd;display:flex;gap:.5em;align-items:center;flex-wrap:wrap;z-index:1}
.toolbar button{font:inherit;padding:.25em .8em;border:1px solid #bbb;border-radius:14px;background:#f6f8fa;cursor:pointer}
.toolbar button[aria-pressed=true]{background:#24292f;color:#fff;border-color:#24292f}
.toolbar input{font:inherit;padding:.25em .6em;min-width:18em;border:1px solid #bbb;border-radius:4px}
table.grid{width:100%;table-layout:fixed}
table.grid td,table.grid th{text-align:left;vertical-align:top}
table.grid col.c-case{width:19%}table.grid col.c-change{width:7%}.chg-neg,.chg-pos{white-space:nowrap}table.grid col.c-side{width:37%}
table.grid pre{max-height:12em;font-size:12.5px}
.cid{font-weight:600;word-break:break-all}.input{color:#444;margin-top:.2em}.expected{color:#666;margin-top:.2em}
.meta{color:#666;font-size:12px}
ul.scores{list-style:none;margin:.2em 0;padding:0;font-size:12.5px}
.s-pass{color:#0b6b2b}.s-fail{color:#a50e0e}.s-none{color:#8a4b00}
.err{color:#a50e0e;font-weight:600;margin:.2em 0}
.chg-neg{color:#a50e0e;font-weight:600}.chg-pos{color:#0b6b2b;font-weight:600}
tr.regressed{background:#fff8f8}tr.improved{background:#f6fbf7}
"""
_BASE, _CAND = "#4e79a7", "#f28e2b"

# Filters and search of the case grid. Plain DOM, nothing fetched; the location hash
# (#filter=regressed&q=chair) presets both, so a link (or a headless browser) can open a view.
_SCRIPT = """
(function () {
  var grid = document.getElementById("cases");
  if (!grid) return;
  var rows = Array.prototype.slice.call(grid.tBodies[0].rows);
  var box = document.getElementById("case-search"), shown = document.getElementById("case-shown");
  var buttons = Array.prototype.slice.call(document.querySelectorAll("#case-filters button"));
  var filter = "all";
  function apply() {
    var q = box.value.toLowerCase(), n = 0;
    rows.forEach(function (r) {
      var ok = (filter === "all" || r.getAttribute("data-" + filter) === "1") &&
               (!q || r.textContent.toLowerCase().indexOf(q) !== -1);
      r.hidden = !ok;
      if (ok) n++;
    });
    shown.textContent = n + " of " + rows.length + " cases shown";
  }
  function choose(name) {
    filter = name;
    buttons.forEach(function (b) { b.setAttribute("aria-pressed", String(b.getAttribute("data-filter") === name)); });
    apply();
  }
  buttons.forEach(function (b) { b.addEventListener("click", function () { choose(b.getAttribute("data-filter")); }); });
  box.addEventListener("input", apply);
  var preset = new URLSearchParams(location.hash.slice(1));
  if (preset.get("q")) box.value = preset.get("q");
  choose(buttons.some(function (b) { return b.getAttribute("data-filter") === preset.get("filter"); })
         ? preset.get("filter") : "all");
})();
"""


def render_comparison(doc: dict, runs: tuple[dict, dict] | None = None, max_cases: int = 10) -> str:
    """The comparison page. Plots and the case grid come from the comparison itself
    (``distributions``, ``cases``); ``runs`` only fills the plots of comparison files written
    before it carried them."""
    verdict = str(doc.get("verdict", ""))
    out = [_head("replaygate: " + verdict),
           "<h1>replaygate comparison</h1>",
           f'<p class="verdict {_cls(verdict)}">{escape(verdict_line(doc))}</p>']
    sides = [doc.get(k) or {} for k in ("baseline", "candidate")]
    names = [escape(str(s.get("variant") or s.get("name") or k)) for s, k in zip(sides, ("baseline", "candidate"))]
    out.append(_compared(doc, sides, names))
    if doc.get("gates"):
        out.append("<h2>Gates</h2>")
        rows = [[*r[:-1], (r[-1], f"v-{_cls(r[-1])}")] for r in fmt.gate_rows(doc)]
        out.append(_table(fmt.GATE_HEADERS, rows))
        why = [g for g in doc["gates"] if g.get("reason")]
        if why:
            out.append('<p><b>Why</b></p><ul class="why">' + "".join(
                f'<li><b>{escape(g["metric"])}</b> ({escape(g.get("verdict", ""))}): {escape(g["reason"])}</li>'
                for g in why) + "</ul>")
    out.append("<h2>Metrics</h2>")
    out.append(_table(fmt.METRIC_HEADERS, fmt.metric_rows(doc)))
    out.append("<h2>Distributions</h2>")
    dists = doc.get("distributions")
    if dists is None and runs:
        from ..compare.listing import distributions
        from ..model import Run

        dists = distributions([Run.from_dict(r) for r in runs])
    if dists is not None:
        out.append(_legend(names))
        out.append(_plots(dists))
    else:
        out.append('<p class="note">This comparison file was written by an older replaygate that did not keep the '
                   "distributions; rerun <code>replaygate compare BASE.json CAND.json --html FILE</code> to plot them.</p>")
    if doc.get("cases") is not None:
        out.append(_grid(doc, names))
    else:
        regs = doc.get("regressions") or []
        if regs:
            out.append(f"<h2>Worst regressions ({min(len(regs), max_cases)} of {len(regs)})</h2>")
            out.extend(_regression(r) for r in regs[:max_cases])
    for w in doc.get("warnings") or []:
        out.append(f'<p class="note">warning: {escape(str(w))}</p>')
    out.append(f"<script>//<![CDATA[{_SCRIPT}//]]></script>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def render_run(doc: dict) -> str:
    from ..compare.listing import distributions
    from ..model import Run

    name = str((doc.get("variant") or {}).get("name", "?"))
    out = [_head(f"replaygate run: {name}"), f"<h1>replaygate run: {escape(name)}</h1>"]
    if not doc.get("complete", True):
        out.append('<p class="verdict fail">Incomplete run: some cases were not replayed.</p>')
    out.append(_table(["metric", "value"], [[k, fmt.value(k, v)] for k, v in (doc.get("summary") or {}).items()]))
    out.append("<h2>Distributions</h2>")
    out.append(_plots(distributions([Run.from_dict(doc)])))
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


_TITLES = {"latency.mean": "latency per call", "cost.mean": "cost per call"}


def _plots(dists: dict[str, dict]) -> str:
    if not dists:
        return '<p class="note">No samples to plot.</p>'
    return '<div class="plots">' + "".join(_histogram(m, h) for m, h in dists.items()) + "</div>"


def _histogram(metric: str, hist: dict, width: int = 320, height: int = 150) -> str:
    """Overlaid bars of precomputed shared-bin histograms (compare.listing.histogram)."""
    edges, counts = hist["edges"], hist["counts"]
    n = hist.get("n") or [sum(c) for c in counts]
    peak = max((max(c) for c in counts if c), default=0) or 1
    pad_l, pad_b, pad_t = 8, 22, 6
    plot_w, plot_h = width - 2 * pad_l, height - pad_b - pad_t
    bw = plot_w / (len(edges) - 1)
    title = _TITLES.get(metric, metric.removeprefix("score.").removesuffix(".mean") + " score")
    svg = [f'<figure class="plot"><figcaption>{escape(title)} ({", ".join(str(k) for k in n)} samples)'
           f'</figcaption><svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'role="img" data-metric="{escape(metric)}">']
    colors = (_BASE, _CAND) if len(counts) > 1 else (_BASE,)
    for gi, (c, color) in enumerate(zip(counts, colors)):
        for i, k in enumerate(c):
            if not k:
                continue
            h = plot_h * int(k) / peak
            x = pad_l + i * bw + (gi * bw / len(counts))
            svg.append(f'<rect x="{x:.1f}" y="{pad_t + plot_h - h:.1f}" width="{max(bw / len(counts) - 1, 1):.1f}" '
                       f'height="{h:.1f}" fill="{color}" fill-opacity="0.85" data-group="{gi}" data-count="{int(k)}">'
                       f"<title>{int(k)} in [{escape(fmt.value(metric, float(edges[i])))}, "
                       f"{escape(fmt.value(metric, float(edges[i + 1])))}{']' if i == len(c) - 1 else ')'}"
                       "</title></rect>")
    y_axis = pad_t + plot_h
    svg.append(f'<line x1="{pad_l}" y1="{y_axis}" x2="{width - pad_l}" y2="{y_axis}" stroke="#999"/>')
    for x, anchor, v in ((pad_l, "start", edges[0]), (width - pad_l, "end", edges[-1])):
        svg.append(f'<text x="{x}" y="{height - 6}" font-size="11" text-anchor="{anchor}" fill="#555">'
                   f"{escape(fmt.value(metric, float(v)))}</text>")
    svg.append("</svg></figure>")
    return "".join(svg)


# --- what was compared, and the case grid -------------------------------------------------------

def _compared(doc: dict, sides: list[dict], names: list[str]) -> str:
    only = [len(doc.get("only_in_baseline") or []), len(doc.get("only_in_candidate") or [])]
    head = (f"<p>baseline <b>{names[0]}</b> vs candidate <b>{names[1]}</b>, "
            f"{int(doc.get('n_paired', 0))} paired cases"
            + (f" ({only[0]} only in baseline, {only[1]} only in candidate)" if any(only) else "") + "</p>")
    facts = [dict(fmt.side_parts(s)) for s in sides]
    labels = list(dict.fromkeys(k for f in facts for k in f))
    if not labels:
        return head
    rows = "".join(f"<tr><th>{escape(k)}</th>" + "".join(f"<td>{escape(f.get(k, ''))}</td>" for f in facts) + "</tr>"
                   for k in labels)
    return (head + f'<table class="sides"><thead><tr><th></th><th>{_role(0, names)}</th>'
            f"<th>{_role(1, names)}</th></tr></thead><tbody>{rows}</tbody></table>")


def _role(i: int, names: list[str]) -> str:
    """Column heading of a side: its role, and its (escaped) variant name when that differs."""
    role = ("baseline", "candidate")[i]
    return role if names[i] == role else f"{role} <b>{names[i]}</b>"


_FILTERS = (("all", "all"), ("regressed", "regressed"), ("improved", "improved"), ("errors", "errors"))


def _grid(doc: dict, names: list[str]) -> str:
    rows = doc.get("cases") or []
    total = int(doc.get("n_cases", len(rows)))
    count = {"all": len(rows), "regressed": sum(1 for r in rows if (r.get("change") or 0) < 0),
             "improved": sum(1 for r in rows if (r.get("change") or 0) > 0),
             "errors": sum(1 for r in rows if r.get("errors"))}
    out = [f"<h2>Cases ({len(rows)}{f' most regressed of {total}' if total > len(rows) else ''}, "
           "most regressed first)</h2>",
           '<div class="toolbar"><span id="case-filters">' + "".join(
               f'<button type="button" data-filter="{key}" aria-pressed="{str(key == "all").lower()}">'
               f"{label} ({count[key]})</button>" for key, label in _FILTERS) + "</span>"
           '<input type="search" id="case-search" placeholder="search ids, inputs, outputs, reasons" '
           'aria-label="search cases"/><span id="case-shown" class="note">'
           f"{len(rows)} of {len(rows)} cases shown</span></div>",
           '<table class="grid" id="cases"><colgroup><col class="c-case"/><col class="c-change"/>'
           '<col class="c-side"/><col class="c-side"/></colgroup><thead><tr><th>case</th><th>change</th>'
           f"<th>{_role(0, names)}</th><th>{_role(1, names)}</th></tr></thead><tbody>"]
    out.extend(_case_row(r) for r in rows)
    out.append("</tbody></table>")
    return "".join(out)


def _case_row(r: dict) -> str:
    change = r.get("change")
    kind = "regressed" if (change or 0) < 0 else "improved" if (change or 0) > 0 else "same"
    attrs = (f' class="{kind}" data-regressed="{int(kind == "regressed")}" data-improved="{int(kind == "improved")}"'
             f' data-errors="{int(bool(r.get("errors")))}"')
    case = [f'<div class="cid">{escape(r.get("case"))}</div>']
    if r.get("input"):
        case.append(f'<div class="input">{escape(r["input"])}</div>')
    if r.get("expected") is not None:
        case.append(f'<div class="expected">expected: {escape(r["expected"])}</div>')
    if change is None:
        chg = '<span class="note">n/a</span>'
    else:
        cls = "chg-neg" if change < 0 else "chg-pos" if change > 0 else "note"
        chg = f'<span class="{cls}">{escape(fmt.delta("quality.pass_rate", change))}</span>'
    return (f"<tr{attrs}><td>{''.join(case)}</td><td>{chg}</td>"
            f"<td>{_side_cell(r.get('baseline') or {})}</td><td>{_side_cell(r.get('candidate') or {})}</td></tr>")


def _side_cell(side: dict) -> str:
    if not side:
        return '<span class="note">not run</span>'
    meta = []
    if side.get("pass") is not None:
        meta.append(f"pass {100 * side['pass']:.0f}%")
    if side.get("latency_ms") is not None:
        meta.append(fmt.value("latency.mean", side["latency_ms"]))
    if side.get("cost_usd") is not None:
        meta.append(fmt.value("cost.mean", side["cost_usd"]))
    if side.get("provenance"):
        meta.append(str(side["provenance"]))
    if (side.get("samples") or 0) > 1:
        meta.append(f"{side['samples']} samples (first output shown)")
    out = [f'<div class="meta">{escape(" · ".join(meta))}</div>']
    if side.get("error"):
        out.append(f'<p class="err">{escape(side["error"])}</p>')
    if side.get("output") is not None:
        out.append(f"<pre>{escape(side['output'])}</pre>")
    scores = side.get("scores") or {}
    if scores:
        items = []
        for name, sc in scores.items():
            passed = sc.get("passed")
            cls, mark = ("s-pass", "✓") if passed else ("s-fail", "✗") if passed is False else ("s-none", "?")
            val = "no score" if sc.get("score") is None else f"{sc['score']:.2f}"
            reason = f" — {escape(sc['reason'])}" if sc.get("reason") else ""
            items.append(f'<li class="{cls}">{mark} <b>{escape(name)}</b> {val}{reason}</li>')
        out.append(f'<ul class="scores">{"".join(items)}</ul>')
    return "".join(out)
