"""Write the drift example's two weeks of production traces (OTLP/JSON lines, GenAI semconv
1.37+): every day the support bot answers the 40 canary questions of ../pr-gate/golden.jsonl
(span attribute app.canary=true) among ordinary traffic. In week 49 the provider silently
changed the model behind `gpt-4o-mini`: a quarter of the canary answers are non-answers, and
calls are slower. Deterministic, so the committed files diff cleanly.

    python example-configs/drift/make_traces.py
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
GOLDEN = HERE.parent / "pr-gate" / "golden.jsonl"
ANSWERS = HERE.parent / "pr-gate" / "answers.json"
SYSTEM = (HERE.parent / "pr-gate" / "prompts" / "support.md").read_text().strip()
WRONG = "I'm not sure about that policy; please check our website."
T_W48 = 1_795_996_800_000_000_000  # 2026-11-30T00:00:00Z, Monday of ISO week 2026-W49 minus 7 days


def attr(key: str, value) -> dict:
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    return {"key": key, "value": {"stringValue": value}}


def chat_span(i: int, week: str, question: str, answer: str, start: int, ms: int, canary: bool) -> dict:
    trace = hashlib.sha256(f"{week}:{i}".encode()).hexdigest()[:32]
    words_in, words_out = len((SYSTEM + " " + question).split()), len(answer.split())
    return {"traceId": trace, "spanId": trace[:16], "name": "chat gpt-4o-mini", "kind": 3,
            "startTimeUnixNano": str(start), "endTimeUnixNano": str(start + ms * 1_000_000),
            "attributes": [
                attr("gen_ai.operation.name", "chat"), attr("gen_ai.provider.name", "openai"),
                attr("gen_ai.request.model", "gpt-4o-mini"), attr("gen_ai.response.model", "gpt-4o-mini"),
                attr("gen_ai.input.messages", json.dumps([
                    {"role": "system", "parts": [{"type": "text", "content": SYSTEM}]},
                    {"role": "user", "parts": [{"type": "text", "content": question}]}])),
                attr("gen_ai.output.messages", json.dumps([
                    {"role": "assistant", "finish_reason": "stop", "parts": [{"type": "text", "content": answer}]}])),
                attr("gen_ai.usage.input_tokens", words_in), attr("gen_ai.usage.output_tokens", words_out),
                attr("app.canary", canary)],
            "status": {}}


def week(name: str, t0: int, drifted: bool) -> list[str]:
    rows = [json.loads(line) for line in GOLDEN.read_text().splitlines()]
    answers = json.loads(ANSWERS.read_text())
    spans = []
    for i, row in enumerate(rows):
        q = row["input"]
        h = int(hashlib.sha256(q.encode()).hexdigest(), 16)
        bad = drifted and h % 4 == 0
        ms = 380 + h % 90 + (260 if drifted else 0)
        spans.append(chat_span(i, name, q, WRONG if bad else answers[q], t0 + i * 60_000_000_000, ms, True))
    for j in range(20):  # ordinary traffic: different questions every week, not canaries
        q = f"Where is my order #{name}-{j:03d}?"
        spans.append(chat_span(100 + j, name, q, "It ships within two business days.",
                               t0 + (3600 + j * 90) * 1_000_000_000, 300 + j * 7, False))
    resource = {"attributes": [attr("service.name", "support-bot"), attr("deployment.environment", "prod")]}
    lines = []
    for k in range(0, len(spans), 15):  # a few spans per export request, as a collector writes them
        lines.append(json.dumps({"resourceSpans": [{"resource": resource, "scopeSpans": [
            {"scope": {"name": "support-bot.genai"}, "spans": spans[k:k + 15]}]}]}, separators=(",", ":")))
    return lines


def main() -> None:
    week_ns = 7 * 86_400 * 1_000_000_000
    for name, t0, drifted in (("2026-W48", T_W48, False), ("2026-W49", T_W48 + week_ns, True)):
        out = HERE / "traces" / f"{name}.otlp.jsonl"
        out.write_text("\n".join(week(name, t0, drifted)) + "\n")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
