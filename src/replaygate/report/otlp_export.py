"""A run as OpenTelemetry data, so results land in the team's own observability backend
(otel-genai.md §3.2 and §5.7):

* one inference span per replayed call (``chat <model>``, GenAI semconv attributes: operation,
  provider, request model and parameters, usage, finish reason, the output as
  ``gen_ai.output.messages``), in a trace of its own per case, linked to the recorded span when
  the case came from a trace;
* one ``gen_ai.evaluation.result`` log record per score, parented to that span (name, score
  value, pass/fail label, the scorer's reason as the explanation; ``error.type`` when the
  scorer failed).

Ids are derived from the run and the case (a re-export gives the same ids). Written as OTLP/JSON
Lines (a ``resourceSpans`` line and a ``resourceLogs`` line, hex ids, integer enums), which any
collector's file receiver and ``replaygate import`` read; ``post`` sends the same data as
protobuf to an OTLP/HTTP endpoint.
"""
from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

SCOPE = "replaygate"
_SPAN_KIND_CLIENT = 3
_STATUS_ERROR = 2
_SEVERITY_INFO = 9


def _id(*parts: Any, size: int) -> str:
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return digest[:size].hex()


def _value(v: Any) -> dict:
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v}
    if isinstance(v, (list, tuple)):
        return {"arrayValue": {"values": [_value(x) for x in v]}}
    return {"stringValue": str(v)}


def _attrs(d: dict[str, Any]) -> list[dict]:
    return [{"key": k, "value": _value(v)} for k, v in d.items() if v is not None]


def _ns(iso: str | None) -> int:
    try:
        return int(datetime.fromisoformat(str(iso)).timestamp() * 1e9)
    except (TypeError, ValueError):
        return 0


def _provider(model: str) -> str | None:
    return model.split("/", 1)[0] if "/" in model else None


def to_otlp(run: dict) -> tuple[dict, dict]:
    """(TracesData, LogsData) as OTLP/JSON dicts for a run document."""
    variant = run.get("variant") or {}
    env = run.get("environment") or {}
    name = str(variant.get("name", "run"))
    model = str(variant.get("model") or variant.get("name") or "")
    run_id = _id(name, env.get("time"), env.get("git_commit"), len(run.get("cases") or []), size=8)
    t0 = _ns(env.get("time"))
    params = variant.get("params") or {}
    request = {f"gen_ai.request.{k}": params[k] for k in ("temperature", "top_p", "max_tokens", "seed")
               if isinstance(params.get(k), (int, float))}
    spans, records = [], []
    clock = t0
    for case in run.get("cases") or []:
        cid = str(case.get("id"))
        source = case.get("source") or {}
        for s in case.get("samples") or []:
            rep = s.get("repeat", 0)
            trace_id = _id(run_id, cid, rep, size=16)
            span_id = _id(run_id, cid, rep, "span", size=8)
            dur = int((s.get("latency_ms") or 0) * 1e6)
            start, clock = clock, clock + max(dur, 1)
            error = s.get("error")
            a: dict[str, Any] = {
                "gen_ai.operation.name": "chat", "gen_ai.provider.name": _provider(model),
                "gen_ai.request.model": model.split("/", 1)[-1] if model else None, **request,
                "gen_ai.usage.input_tokens": s.get("input_tokens"),
                "gen_ai.usage.output_tokens": s.get("output_tokens"),
                "gen_ai.usage.cache_read.input_tokens": s.get("cached_tokens"),
                "gen_ai.response.finish_reasons": [s["finish_reason"]] if s.get("finish_reason") else None,
                "gen_ai.response.time_to_first_chunk": (s["ttft_ms"] / 1000.0) if s.get("ttft_ms") else None,
                "gen_ai.usage.cost": s.get("cost_usd"),
                "replaygate.run.variant": name, "replaygate.run.id": run_id, "replaygate.case.id": cid,
                "replaygate.repeat": rep, "replaygate.cached": bool(s.get("cached")),
                "error.type": (error or {}).get("type"),
            }
            if case.get("input"):
                a["gen_ai.input.messages"] = json.dumps(
                    [{"role": "user", "parts": [{"type": "text", "content": case["input"]}]}], ensure_ascii=False)
            if s.get("output") is not None or s.get("tool_calls"):
                parts = [{"type": "text", "content": s["output"]}] if s.get("output") is not None else []
                parts += [{"type": "tool_call", "id": t.get("id"), "name": t.get("name"),
                           "arguments": t.get("arguments")} for t in s.get("tool_calls") or []]
                a["gen_ai.output.messages"] = json.dumps(
                    [{"role": "assistant", "parts": parts, "finish_reason": s.get("finish_reason") or "stop"}],
                    ensure_ascii=False)
            span = {"traceId": trace_id, "spanId": span_id, "name": f"chat {a['gen_ai.request.model'] or name}",
                    "kind": _SPAN_KIND_CLIENT, "startTimeUnixNano": str(start),
                    "endTimeUnixNano": str(start + max(dur, 1)), "attributes": _attrs(a)}
            if error:
                span["status"] = {"code": _STATUS_ERROR, "message": str(error.get("message", ""))}
            if source.get("trace_id") and source.get("span_id"):  # the recorded call it replays
                span["links"] = [{"traceId": source["trace_id"], "spanId": source["span_id"]}]
            spans.append(span)
            for scorer, sc in (s.get("scores") or {}).items():
                if not isinstance(sc, dict):
                    continue
                ev = {"gen_ai.evaluation.name": scorer,
                      "gen_ai.evaluation.score.value": float(sc["score"]) if isinstance(sc.get("score"), (int, float)) else None,
                      "gen_ai.evaluation.score.label": ("pass" if sc.get("passed") else "fail")
                      if sc.get("passed") is not None and not sc.get("error") else None,
                      "gen_ai.evaluation.explanation": sc.get("reason") or None,
                      "error.type": (sc.get("error") or {}).get("type") if isinstance(sc.get("error"), dict)
                      else (str(sc["error"]) if sc.get("error") else None),
                      "replaygate.run.id": run_id, "replaygate.case.id": cid}
                records.append({"timeUnixNano": str(start + max(dur, 1)),
                                "observedTimeUnixNano": str(start + max(dur, 1)),
                                "severityNumber": _SEVERITY_INFO, "eventName": "gen_ai.evaluation.result",
                                "traceId": trace_id, "spanId": span_id, "attributes": _attrs(ev)})
    resource = {"attributes": _attrs({"service.name": "replaygate", "replaygate.variant": name,
                                      "vcs.ref.head.revision": env.get("git_commit")})}
    scope = {"name": SCOPE, "version": str(env.get("replaygate_version", ""))}
    traces = {"resourceSpans": [{"resource": resource, "scopeSpans": [{"scope": scope, "spans": spans}]}]}
    logs = {"resourceLogs": [{"resource": resource, "scopeLogs": [{"scope": scope, "logRecords": records}]}]}
    return traces, logs


def render(run: dict) -> str:
    """OTLP/JSON Lines: the spans, then the evaluation results."""
    return "".join(_line(d) for d in to_otlp(run))


def _line(d: dict) -> str:
    # U+2028/2029 are valid in JSON strings but end a line for many line readers: escaped
    text = json.dumps(d, separators=(",", ":"), ensure_ascii=False)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029") + "\n"


def post(run: dict, endpoint: str, timeout: float = 30.0, headers: dict[str, str] | None = None) -> None:
    """Send the run to an OTLP/HTTP endpoint (``/v1/traces`` and ``/v1/logs`` under it) as
    protobuf. Raises OSError-like httpx errors and RuntimeError on a non-2xx answer."""
    import httpx
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    from ..sources.otlp import json_to_proto

    traces, logs = to_otlp(run)
    base = endpoint.rstrip("/")
    with httpx.Client(timeout=timeout) as client:
        for path, body, cls in (("/v1/traces", traces, ExportTraceServiceRequest),
                                ("/v1/logs", logs, ExportLogsServiceRequest)):
            r = client.post(base + path, content=json_to_proto(body, cls).SerializeToString(),
                            headers={"Content-Type": "application/x-protobuf", **(headers or {})})
            if not 200 <= r.status_code < 300:
                raise RuntimeError(f"{base + path} answered HTTP {r.status_code}")
