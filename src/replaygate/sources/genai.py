"""One recorded span (+ its GenAI events) -> one replayable Case, for every convention in use.

Conventions, detected per span and recorded in ``Case.metadata["convention"]``:

* ``otel-genai-1.37``  gen_ai.input.messages / output.messages / system_instructions /
  tool.definitions (JSON strings on spans, structured values on the details event)
* ``otel-genai-events`` v1.28-v1.36 events gen_ai.{system,user,assistant,tool}.message and
  gen_ai.choice, as log records (joined by trace/span id) or span events
* ``otel-genai-1.26``  span events gen_ai.content.prompt / gen_ai.content.completion (or the
  gen_ai.prompt / gen_ai.completion JSON attributes they carry)
* ``openllmetry``      indexed gen_ai.prompt.N.* / gen_ai.completion.N.* keys
* ``openinference``    llm.input_messages.N.message.*, llm.output_messages.N.*, llm.* params
* ``openinference-raw`` OpenInference input.value holding the raw provider request
* ``vercel-ai``        Vercel AI SDK ai.prompt.messages / ai.response.* on doGenerate/doStream spans

Only inference spans become cases; the rest (retrieval, tools, agents) are classified so the
importer can use them as context or count them.
"""
from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from replaygate import fastjson
from replaygate.model import Case, ErrorInfo, Message, Recorded, ToolCall
from replaygate.sources import refs as content_refs
from replaygate.sources.otlp import Event, SpanRecord

INFERENCE = "inference"
RETRIEVAL = "retrieval"
TOOL = "tool"
AGENT = "agent"
EMBEDDINGS = "embeddings"
UNSUPPORTED = "unsupported"  # a GenAI operation we do not replay (rerank, custom...)
OTHER = "other"  # not a GenAI span at all

_OP_CATEGORY = {
    "chat": INFERENCE, "text_completion": INFERENCE, "generate_content": INFERENCE,
    "completion": INFERENCE, "generate": INFERENCE, "llm_call": INFERENCE,
    "responses": INFERENCE, "response": INFERENCE,
    "embeddings": EMBEDDINGS, "embedding": EMBEDDINGS,
    "retrieval": RETRIEVAL, "retriever": RETRIEVAL, "reranker": RETRIEVAL,
    "execute_tool": TOOL, "tool": TOOL,
    "invoke_agent": AGENT, "create_agent": AGENT, "invoke_workflow": AGENT, "plan": AGENT,
    "agent": AGENT, "chain": AGENT, "workflow": AGENT, "task": AGENT, "run_agent": AGENT,
    "guardrail": AGENT, "evaluator": AGENT, "prompt": AGENT,
}
_OPENINFERENCE_OP = {"LLM": "chat", "EMBEDDING": "embeddings", "RETRIEVER": "retrieval",
                     "RERANKER": "reranker", "TOOL": "execute_tool", "AGENT": "invoke_agent",
                     "CHAIN": "chain", "GUARDRAIL": "guardrail", "EVALUATOR": "evaluator",
                     "PROMPT": "prompt"}
# Vercel AI SDK: the doGenerate/doStream spans are the provider calls; the outer generateText /
# streamText spans wrap them (and their tool loops), so they are context.
_VERCEL_OP = {"ai.generateText.doGenerate": (INFERENCE, "chat"), "ai.streamText.doStream": (INFERENCE, "chat"),
              "ai.generateObject.doGenerate": (INFERENCE, "chat"), "ai.streamObject.doStream": (INFERENCE, "chat"),
              "ai.generateText": (AGENT, "ai.generateText"), "ai.streamText": (AGENT, "ai.streamText"),
              "ai.generateObject": (AGENT, "ai.generateObject"), "ai.streamObject": (AGENT, "ai.streamObject"),
              "ai.toolCall": (TOOL, "execute_tool"), "ai.embed.doEmbed": (EMBEDDINGS, "embeddings"),
              "ai.embedMany.doEmbed": (EMBEDDINGS, "embeddings"), "ai.embed": (EMBEDDINGS, "embeddings"),
              "ai.embedMany": (EMBEDDINGS, "embeddings")}
# Langfuse SDK observation types and MLflow span types (§4.3)
_LANGFUSE_KINDS = {"generation": (INFERENCE, "chat"), "embedding": (EMBEDDINGS, "embeddings"),
                   "retriever": (RETRIEVAL, "retrieval"), "tool": (TOOL, "execute_tool"),
                   "agent": (AGENT, "invoke_agent"), "chain": (AGENT, "chain"), "span": (OTHER, None),
                   "event": (OTHER, None), "evaluator": (AGENT, "evaluator"), "guardrail": (AGENT, "guardrail")}
_MLFLOW_KINDS = {"llm": (INFERENCE, "chat"), "chat_model": (INFERENCE, "chat"),
                 "embedding": (EMBEDDINGS, "embeddings"), "retriever": (RETRIEVAL, "retrieval"),
                 "reranker": (RETRIEVAL, "reranker"), "tool": (TOOL, "execute_tool"),
                 "agent": (AGENT, "invoke_agent"), "chain": (AGENT, "chain"), "parser": (OTHER, None),
                 "unknown": (OTHER, None)}
_VENDOR_KINDS = (("langfuse.observation.type", _LANGFUSE_KINDS), ("mlflow.spanType", _MLFLOW_KINDS))
ADK_REQUEST = "gcp.vertex.agent.llm_request"
ADK_RESPONSE = "gcp.vertex.agent.llm_response"
ADK_TOOL_ARGS = "gcp.vertex.agent.tool_call_args"
_MODEL_KEYS = ("gen_ai.request.model", "gen_ai.response.model", "llm.model_name",
               "llm.request.model_name")

LEGACY_MESSAGE_EVENTS = {"gen_ai.system.message": "system", "gen_ai.user.message": "user",
                         "gen_ai.assistant.message": "assistant", "gen_ai.tool.message": "tool"}
CHOICE_EVENT = "gen_ai.choice"
DETAILS_EVENT = "gen_ai.client.inference.operation.details"
PROMPT_EVENT_126 = "gen_ai.content.prompt"
COMPLETION_EVENT_126 = "gen_ai.content.completion"
EVALUATION_EVENT = "gen_ai.evaluation.result"
GENAI_EVENT_NAMES = frozenset({*LEGACY_MESSAGE_EVENTS, CHOICE_EVENT, DETAILS_EVENT,
                               PROMPT_EVENT_126, COMPLETION_EVENT_126, EVALUATION_EVENT})


# Every key classify() reads starts with one of these (and every event name it reads with
# "gen_ai."): a span without any such key or event name is OTHER whatever else it holds, so
# the import counts such spans without decoding them (tested against classify).
SPAN_KEY_PREFIXES = ("gen_ai.", "llm.", "openinference.span.kind", "traceloop.span.kind",
                     "langfuse.observation.type", "mlflow.spanType", "ai.operationId",
                     "gcp.vertex.agent.")


def classify(span: SpanRecord) -> tuple[str, str | None]:
    """(category, operation) from attributes, never from the span name (§4.6)."""
    a = span.attributes
    kind = a.get("openinference.span.kind")
    if isinstance(kind, str) and kind:
        op = _OPENINFERENCE_OP.get(kind.upper(), kind.lower())
        return _OP_CATEGORY.get(op, UNSUPPORTED), op
    for key in ("gen_ai.operation.name", "llm.request.type", "traceloop.span.kind"):
        op = a.get(key)
        if isinstance(op, str) and op:
            op = op.lower()
            return _OP_CATEGORY.get(op, UNSUPPORTED), op
    for key, table in _VENDOR_KINDS:  # Langfuse SDK, MLflow (values may be JSON-encoded)
        kind = a.get(key)
        if isinstance(kind, str) and kind:
            kind = kind.strip('"').lower()
            return table.get(kind, (UNSUPPORTED, kind))
    vercel = a.get("ai.operationId")
    if isinstance(vercel, str) and vercel:
        return _VERCEL_OP.get(vercel, (UNSUPPORTED, vercel))
    if ADK_REQUEST in a:  # Google ADK's call_llm span
        return INFERENCE, "generate_content"
    if ADK_TOOL_ARGS in a:
        return TOOL, "execute_tool"
    if "gen_ai.tool.name" in a or "gen_ai.tool.call.id" in a:
        return TOOL, "execute_tool"
    if any(k in a for k in _MODEL_KEYS) or any(e.name == PROMPT_EVENT_126 for e in span.events):
        return INFERENCE, "chat"
    return OTHER, None


# ---------------------------------------------------------------------------------------------
# value helpers

def maybe_json(x: Any) -> Any:
    """Parse JSON text (content attributes on spans are JSON strings; some emitters encode
    twice). Anything else is returned unchanged."""
    for _ in range(2):
        if isinstance(x, str) and x[:1] in ("[", "{", '"'):
            try:
                x = fastjson.loads_value(x)
            except ValueError:
                return x
        else:
            break
    return x


def rebuild_indexed(attrs: dict[str, Any], prefix: str) -> list:
    """Flattened ``prefix.N.a.M.b`` keys -> nested lists/dicts. Only keys whose segment right
    after the prefix is an integer count (so ``gen_ai.prompt.name`` is not a message)."""
    root: dict = {}
    lead = prefix + "."
    n = len(lead)
    for key in [k for k in attrs if k.startswith(lead)]:
        value = attrs[key]
        parts = key[n:].split(".")
        if not parts[0].isdigit():
            continue
        node = root
        for p in parts[:-1]:
            k = int(p) if p.isdigit() else p
            nxt = node.get(k)
            if not isinstance(nxt, dict):
                nxt = node[k] = {}
            node = nxt
        last = parts[-1]
        node[int(last) if last.isdigit() else last] = value
    out = _listify(root)
    return out if isinstance(out, list) else []


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    if node and all(isinstance(k, int) for k in node):
        return [_listify(node[k]) for k in sorted(node)]
    return {k: _listify(v) for k, v in node.items()}


def _num(x: Any, conv=float) -> Any:
    """A finite number from a value of any AnyValue type (Spring AI sends numbers as text)."""
    if x is None or isinstance(x, bool):
        return None
    try:
        f = float(x if isinstance(x, (int, float)) else str(x))
    except (TypeError, ValueError):
        return None
    if not math.isfinite(f):
        return None
    return int(f) if conv is int else f


def _first(*values: Any) -> Any:
    for v in values:
        if v is not None and v != "":
            return v
    return None


def _as_list(x: Any) -> list | None:
    """A list, a JSON-array string or a single string -> list."""
    x = maybe_json(x)
    if x is None:
        return None
    if isinstance(x, (list, tuple)):
        return list(x)
    return [x]


def _args_text(x: Any) -> str:
    if x is None:
        return "{}"
    if isinstance(x, str):
        return x
    return json.dumps(x, ensure_ascii=False)


def _text(x: Any) -> str:
    return x if isinstance(x, str) else json.dumps(x, ensure_ascii=False)


_ROLE = {"developer": "system", "instruction": "system", "human": "user", "ai": "assistant",
         "model": "assistant", "bot": "assistant", "function": "tool", "ipython": "tool"}


def _role(r: Any, default: str = "user") -> str:
    r = str(r or default).lower()
    return _ROLE.get(r, r)


_FINISH = {"tool_calls": "tool_call", "function_call": "tool_call", "tool_use": "tool_call",
           "tool_call": "tool_call", "max_tokens": "length", "max_output_tokens": "length",
           "length": "length", "end_turn": "stop", "stop_sequence": "stop", "stop": "stop",
           "eos": "stop", "complete": "stop", "finish_reason_stop": "stop",
           "content_filter": "content_filter", "safety": "content_filter",
           "recitation": "content_filter", "error": "error"}


def normalize_finish_reason(x: Any) -> str | None:
    # fast path: an already normalised reason, bare or as the common recorded ["stop"]
    # (the general path below maps it to the same value)
    first = x[0] if type(x) is list and len(x) == 1 else x
    if type(first) is str:
        known = _FINISH.get(first)
        if known is not None:
            return known
    if isinstance(x, str):
        parsed = maybe_json(x)
        if isinstance(parsed, list):
            x = parsed
    if isinstance(x, (list, tuple)):
        x = x[0] if x else None
    if x is None or x == "":
        return None
    r = str(x).strip().lower().replace("-", "_")  # Vercel AI SDK: "tool-calls"
    return _FINISH.get(r, r)


# ---------------------------------------------------------------------------------------------
# message shapes -> model.Message

def _tool_call(tc: Any) -> ToolCall | None:
    """OpenAI {id, function: {name, arguments}}, flat {id, name, arguments}, OpenInference
    {tool_call: {...}}, or an OTel tool_call part."""
    if not isinstance(tc, dict):
        return None
    if isinstance(tc.get("tool_call"), dict):
        tc = tc["tool_call"]
    fn = tc.get("function") if isinstance(tc.get("function"), dict) else tc
    name = fn.get("name")
    if not name:
        return None
    # arguments kept verbatim when recorded as text (the exact JSON the model produced)
    return ToolCall(name=str(name), arguments=_args_text(fn.get("arguments")), id=tc.get("id"))


def _content_parts(content: Any) -> str | list[dict] | None:
    """OpenAI content (text or parts), OpenInference contents or OTel parts -> Message.content.
    Pure-text content collapses to a string."""
    if isinstance(content, str) and content[:2] == "[{":
        # OpenLLMetry records multimodal content as a JSON string of the parts array; any
        # other JSON text (e.g. a tool result) is content as-is
        parsed = maybe_json(content)
        if isinstance(parsed, list) and parsed and all(
                isinstance(p, dict) and "type" in p for p in parsed):
            content = parsed
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, dict):
        content = [content]
    if not isinstance(content, list):
        return _text(content)
    text = _text_parts(content)
    if text is not None:  # fast path: OTel text parts
        return text
    parts: list[dict] = []
    for p in content:
        if isinstance(p, str):
            parts.append({"type": "text", "text": p})
            continue
        if not isinstance(p, dict):
            continue
        if isinstance(p.get("message_content"), dict):  # OpenInference
            p = p["message_content"]
        t = p.get("type")
        if t in ("text", "input_text", "output_text", "refusal") or (t is None and (
                "text" in p or isinstance(p.get("content"), str))):
            txt = p.get("text", p.get("content"))
            if txt is not None:
                parts.append({"type": "text", "text": _text(txt)})
        elif t in ("image_url",):
            parts.append(p)
        elif t == "image":  # OpenInference image part
            url = ((p.get("image") or {}).get("image") or {}).get("url") or (p.get("image") or {}).get("url")
            if url:
                parts.append({"type": "image_url", "image_url": {"url": url}})
        elif t == "uri":
            parts.append({"type": "image_url", "image_url": {"url": p.get("uri")}}
                         if p.get("modality") == "image" else dict(p))
        elif t == "blob":
            mime = p.get("mime_type") or "application/octet-stream"
            url = f"data:{mime};base64,{p.get('content', '')}"
            parts.append({"type": "image_url", "image_url": {"url": url}}
                         if p.get("modality") == "image" else dict(p))
        elif t in ("reasoning", "thinking", "compaction"):
            continue  # model-internal; not part of what is re-sent
        elif t is not None:
            parts.append(dict(p))  # file and generic parts kept as-is
    if all(p.get("type") == "text" for p in parts):
        return "".join(p["text"] for p in parts)
    return parts


def openai_message(d: dict, default_role: str = "user") -> list[Message]:
    role = _role(d.get("role"), default_role)
    calls = [c for c in (_tool_call(tc) for tc in d.get("tool_calls") or []) if c]
    if isinstance(d.get("function_call"), dict):
        c = _tool_call(d["function_call"])
        if c:
            calls.append(c)
    content = d.get("content")
    if content is None and "contents" in d:  # OpenInference multi-part
        content = d["contents"]
    tool_call_id = d.get("tool_call_id") or (d.get("id") if role == "tool" else None)
    return [Message(role=role, content=_content_parts(content), tool_calls=calls,
                    tool_call_id=tool_call_id, name=d.get("name"))]


def _text_parts(parts: Any) -> str | None:
    """The joined text of a non-empty list of OTel text parts ({type: text, content: str}),
    else None."""
    if type(parts) is not list or not parts:
        return None
    texts = []
    for p in parts:
        if type(p) is not dict or p.get("type") != "text":
            return None
        c = p.get("content")
        if type(c) is not str:
            return None
        texts.append(c)
    return "".join(texts)


def otel_message(d: Any, default_role: str = "user") -> list[Message]:
    """An OTel ChatMessage {role, parts[]} (or an OpenAI-shaped message found in its place)."""
    if isinstance(d, str):
        return [Message(role=default_role, content=d)]
    if not isinstance(d, dict):
        return []
    if "parts" not in d:
        return openai_message(d, default_role)
    text = _text_parts(d["parts"])
    if text is not None:  # fast path: only text parts, as _content_parts would join them
        return [Message(role=_role(d.get("role"), default_role), content=text, tool_calls=[],
                        name=d.get("name"))]
    role = _role(d.get("role"), default_role)
    content_parts: list = []
    calls: list[ToolCall] = []
    out: list[Message] = []
    for p in d.get("parts") or []:
        t = p.get("type") if isinstance(p, dict) else None
        if t == "tool_call":
            c = _tool_call(p)
            if c:
                calls.append(c)
        elif t == "tool_call_response":
            resp = _first(p.get("response"), p.get("result"), p.get("content"))
            tid = p.get("id")
            out.append(Message(role="tool", content=_text(resp) if resp is not None else "",
                               tool_call_id=tid.strip() if isinstance(tid, str) else tid))
        else:
            content_parts.append(p)
    if content_parts or calls or not out:
        content = _content_parts(content_parts) if content_parts else None
        out.insert(0, Message(role=role, content=content, tool_calls=calls, name=d.get("name")))
    return out


def messages_from(value: Any, default_role: str = "user") -> list[Message]:
    value = maybe_json(value)
    if isinstance(value, str):
        return [Message(role=default_role, content=value)]
    if isinstance(value, dict):
        value = [value]
    out: list[Message] = []
    for m in value or []:
        out.extend(otel_message(m, default_role))
    return out


_system_text_memo: dict[str, str] = {}  # one system prompt is recorded on many spans


def _system_message(value: Any) -> Message | None:
    if type(value) is str:
        text = _system_text_memo.get(value)
        if text is not None:
            return Message(role="system", content=text)
        message = _parse_system_message(value)
        if message is not None and type(message.content) is str and len(value) <= 65_536:
            if len(_system_text_memo) >= 64:  # bounded: at most a few MB
                _system_text_memo.clear()
            _system_text_memo[value] = message.content
        return message
    return _parse_system_message(value)


def _parse_system_message(value: Any) -> Message | None:
    value = maybe_json(value)
    if value is None or value == [] or value == "":
        return None
    if isinstance(value, dict) and "parts" in value:
        value = value["parts"]
    return Message(role="system", content=_content_parts(value))


@dataclass
class _Output:
    text: str | None = None
    tool_calls: list[ToolCall] | None = None
    finish_reason: str | None = None


def _output_from_messages(msgs: list[Message], finish: Any = None) -> _Output | None:
    assistant = [m for m in msgs if m.role != "tool"]
    if not assistant:
        return None
    m = assistant[0]  # the first choice is the one that was used
    text = m.content if isinstance(m.content, str) or m.content is None else _text(m.content)
    return _Output(text, list(m.tool_calls), normalize_finish_reason(finish))


def _otel_output(value: Any) -> _Output | None:
    value = maybe_json(value)
    if isinstance(value, dict):
        value = [value]  # Gemini CLI sends a single object
    if isinstance(value, str):
        return _Output(value)
    if not isinstance(value, list) or not value:
        return None
    first = value[0]
    msgs = otel_message(first, "assistant")
    return _output_from_messages(msgs, first.get("finish_reason") if isinstance(first, dict) else None)


# ---------------------------------------------------------------------------------------------
# tools

def _tool_def(d: Any) -> dict | None:
    """OTel flat {type, name, description, parameters} or OpenAI nested -> OpenAI nested."""
    d = maybe_json(d)
    if not isinstance(d, dict):
        return None
    if isinstance(d.get("tool"), dict):  # OpenInference llm.tools.N.tool.json_schema
        return _tool_def(d["tool"].get("json_schema") or d["tool"])
    if isinstance(d.get("function"), dict):
        fn = dict(d["function"])
    elif d.get("name"):
        fn = {k: v for k, v in d.items() if k != "type"}
    else:
        return None
    if "parameters" in fn:
        fn["parameters"] = maybe_json(fn["parameters"])
    return {"type": "function", "function": fn}


_TOOL_PREFIXES = ("gen_ai.tool.definitions", "llm.request.functions.", "llm.tools.", "ai.prompt.tools")


def _tools(a: dict[str, Any]) -> list[dict]:
    if not _key_plan(a).has_tools:
        return []
    for raw in (a.get("gen_ai.tool.definitions"), rebuild_indexed(a, "gen_ai.tool.definitions"),
                rebuild_indexed(a, "llm.request.functions"), rebuild_indexed(a, "llm.tools"),
                a.get("ai.prompt.tools")):
        raw = maybe_json(raw)
        if isinstance(raw, dict):
            raw = [raw]
        if raw and isinstance(raw, list):
            return [t for t in (_tool_def(x) for x in raw) if t]
    return []


def _request_tools(a: dict[str, Any]) -> list[dict]:
    """Tool definitions inside a recorded raw request (OpenInference, MLflow, Gemini/ADK)."""
    for key in ("input.value", "mlflow.spanInputs"):
        if key in a:
            raw = maybe_json(a[key])
            if isinstance(raw, dict) and isinstance(raw.get("tools"), list):
                return [t for t in (_tool_def(x) for x in raw["tools"]) if t]
    if ADK_REQUEST in a:
        req = maybe_json(a[ADK_REQUEST])
        config = req.get("config") if isinstance(req, dict) else None
        if isinstance(config, dict) and isinstance(config.get("tools"), list):
            decls = [d for t in config["tools"] if isinstance(t, dict)
                     for d in t.get("function_declarations") or t.get("functionDeclarations") or []]
            return [t for t in (_tool_def({"type": "function", **d}) for d in decls if isinstance(d, dict)) if t]
    return []


# ---------------------------------------------------------------------------------------------
# per-convention content

@dataclass
class Content:
    convention: str
    messages: list[Message]
    output: _Output | None


def _otel_137(a: dict[str, Any], events: list[Event]) -> Content | None:
    if ("gen_ai.input.messages" not in a and "gen_ai.output.messages" not in a
            and "gen_ai.system_instructions" not in a and "gen_ai.system.instructions" not in a):
        return None
    msgs = messages_from(a.get("gen_ai.input.messages"))
    system = _system_message(_first(a.get("gen_ai.system_instructions"),
                                    a.get("gen_ai.system.instructions")))
    if system is not None and not any(m.role == "system" for m in msgs):
        msgs.insert(0, system)
    return Content("otel-genai-1.37", msgs, _otel_output(a.get("gen_ai.output.messages")))


def _event_payload(ev: Event) -> dict:
    """Legacy message event content: the log body, or, on span events, the attributes
    (some emitters put a JSON body into gen_ai.event.content)."""
    if isinstance(ev.body, dict):
        return ev.body
    if isinstance(ev.body, str):
        return {"content": ev.body}
    raw = maybe_json(ev.attributes.get("gen_ai.event.content"))
    if isinstance(raw, dict):
        return raw
    return ev.attributes


def _otel_events(a: dict[str, Any], events: list[Event]) -> Content | None:
    msgs: list[Message] = []
    choices: list[tuple[int, dict]] = []
    seen = False
    for ev in events:
        role = LEGACY_MESSAGE_EVENTS.get(ev.name)
        if role is not None:
            seen = True
            body = _event_payload(ev)
            if "content" not in body and "tool_calls" not in body:
                continue  # content capture was off: structure without text
            d = dict(body)
            d["role"] = body.get("role") or role
            msgs.extend(openai_message(d, role))
        elif ev.name == CHOICE_EVENT:
            seen = True
            body = _event_payload(ev)
            choices.append((_num(body.get("index"), int) or 0, body))
    if not seen:
        return None
    output = None
    if choices:
        _, body = min(choices, key=lambda c: c[0])
        message = body.get("message") if isinstance(body.get("message"), dict) else {}
        d = {"role": "assistant", **message}
        if "tool_calls" in body and "tool_calls" not in message:  # YAML-model placement
            d["tool_calls"] = body["tool_calls"]
        if "content" in d or d.get("tool_calls"):
            output = _output_from_messages(openai_message(d, "assistant"), body.get("finish_reason"))
        else:
            output = _Output(None, [], normalize_finish_reason(body.get("finish_reason")))
    return Content("otel-genai-events", msgs, output)


def _otel_126(a: dict[str, Any], events: list[Event]) -> Content | None:
    prompt = a.get("gen_ai.prompt")
    completion = a.get("gen_ai.completion")
    for ev in events:
        if ev.name == PROMPT_EVENT_126:
            prompt = ev.attributes.get("gen_ai.prompt", prompt)
        elif ev.name == COMPLETION_EVENT_126:
            completion = ev.attributes.get("gen_ai.completion", completion)
    if prompt is None and completion is None:
        return None
    output = None
    if completion is not None:
        comp = maybe_json(completion)
        if isinstance(comp, list) and comp and isinstance(comp[0], dict):
            output = _output_from_messages(openai_message(comp[0], "assistant"),
                                           comp[0].get("finish_reason"))
        else:
            output = _Output(_text(comp))
    return Content("otel-genai-1.26", messages_from(prompt), output)


def _openllmetry(a: dict[str, Any], events: list[Event]) -> Content | None:
    prompts = rebuild_indexed(a, "gen_ai.prompt")
    completions = rebuild_indexed(a, "gen_ai.completion")
    if not prompts and not completions:
        return None
    msgs: list[Message] = []
    for p in prompts:
        if isinstance(p, dict):
            msgs.extend(openai_message(p))
    output = None
    if completions and isinstance(completions[0], dict):
        c = completions[0]
        output = _output_from_messages(openai_message(c, "assistant"), c.get("finish_reason"))
    return Content("openllmetry", msgs, output)


def _vercel_message(d: Any) -> list[Message]:
    """Vercel AI SDK message: content is text or parts {type: text | tool-call | tool-result}."""
    if not isinstance(d, dict):
        return []
    content = d.get("content")
    if not isinstance(content, list):
        return openai_message(d)
    role = _role(d.get("role"))
    texts: list[dict] = []
    calls: list[ToolCall] = []
    results: list[Message] = []
    for p in content:
        t = p.get("type") if isinstance(p, dict) else None
        if t == "tool-call":
            calls.append(ToolCall(name=str(p.get("toolName")), arguments=_args_text(p.get("args", p.get("input"))),
                                  id=p.get("toolCallId")))
        elif t == "tool-result":
            res = _first(p.get("result"), p.get("output"))
            results.append(Message(role="tool", content=_text(res) if res is not None else "",
                                   tool_call_id=p.get("toolCallId")))
        elif p is not None:
            texts.append(p)
    out = [Message(role=role, content=_content_parts(texts), tool_calls=calls)] if texts or calls else []
    return out + results


def _vercel(a: dict[str, Any], events: list[Event]) -> Content | None:
    """Vercel AI SDK spans (ai.generateText.doGenerate / ai.streamText.doStream)."""
    raw = maybe_json(a.get("ai.prompt.messages"))
    if raw is None:
        prompt = maybe_json(a.get("ai.prompt"))  # {system?, prompt? | messages?} on outer spans
        if isinstance(prompt, dict):
            raw = prompt.get("messages") or (
                [{"role": "system", "content": prompt["system"]}] if prompt.get("system") else []) + (
                [{"role": "user", "content": prompt["prompt"]}] if prompt.get("prompt") else [])
    text, calls = a.get("ai.response.text"), maybe_json(a.get("ai.response.toolCalls"))
    if raw is None and text is None and calls is None:
        return None
    msgs = [m for d in (raw if isinstance(raw, list) else []) for m in _vercel_message(d)]
    output = None
    if text is not None or calls:
        output = _Output(text, [ToolCall(name=str(c.get("toolName")), arguments=_args_text(c.get("args")),
                                         id=c.get("toolCallId"))
                                for c in (calls if isinstance(calls, list) else []) if isinstance(c, dict)],
                         normalize_finish_reason(a.get("ai.response.finishReason")))
    return Content("vercel-ai", msgs, output)


def _openinference(a: dict[str, Any], events: list[Event]) -> Content | None:
    inputs = rebuild_indexed(a, "llm.input_messages")
    outputs = rebuild_indexed(a, "llm.output_messages")
    if inputs or outputs:
        msgs: list[Message] = []
        for m in inputs:
            if isinstance(m, dict):
                msgs.extend(openai_message(m.get("message", m)))
        output = None
        if outputs and isinstance(outputs[0], dict):
            out = outputs[0].get("message", outputs[0])
            output = _output_from_messages(openai_message(out, "assistant"),
                                           a.get("llm.finish_reason"))
        return Content("openinference", msgs, output)
    prompts = rebuild_indexed(a, "llm.prompts")  # legacy completions API
    if prompts:
        msgs = [Message("user", _first(p.get("prompt", {}).get("text") if isinstance(p, dict) else p))
                for p in prompts]
        choices = rebuild_indexed(a, "llm.choices")
        text = choices[0].get("completion", {}).get("text") if choices and isinstance(choices[0], dict) else None
        return Content("openinference", msgs, _Output(text) if text is not None else None)
    raw = maybe_json(a.get("input.value"))
    if isinstance(raw, dict) and isinstance(raw.get("messages"), list):
        msgs = messages_from(raw["messages"])
        output = None
        resp = maybe_json(a.get("output.value"))
        if isinstance(resp, dict) and isinstance(resp.get("choices"), list) and resp["choices"]:
            ch = resp["choices"][0]
            if isinstance(ch, dict) and isinstance(ch.get("message"), dict):
                output = _output_from_messages(openai_message(ch["message"], "assistant"),
                                               ch.get("finish_reason"))
        return Content("openinference-raw", msgs, output)
    return None


def _chat_output(value: Any) -> _Output | None:
    """A recorded response in the shapes vendors store: a chat completion ({choices: [...]}),
    one message, a list of messages, or plain text."""
    value = maybe_json(value)
    if isinstance(value, str):
        return _Output(value)
    if isinstance(value, list) and value:
        value = value[0]
    if not isinstance(value, dict):
        return None
    choices = value.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        ch = choices[0]
        msg = ch.get("message") if isinstance(ch.get("message"), dict) else {"content": ch.get("text")}
        return _output_from_messages(openai_message(msg, "assistant"), ch.get("finish_reason"))
    return _output_from_messages(otel_message(value, "assistant"), value.get("finish_reason"))


def _chat_input(value: Any) -> list[Message] | None:
    value = maybe_json(value)
    if isinstance(value, dict):
        if isinstance(value.get("messages"), list):
            return messages_from(value["messages"])
        for k in ("input", "prompt", "query", "question"):  # a single prompt, as SDKs wrap it
            if isinstance(value.get(k), str):
                return [Message(role="user", content=value[k])]
        return None
    if isinstance(value, (list, str)):
        return messages_from(value)
    return None


def _langfuse(a: dict[str, Any], events: list[Event]) -> Content | None:
    """Langfuse SDK generations: input and output as JSON (§4.3)."""
    if "langfuse.observation.input" not in a and "langfuse.observation.output" not in a:
        return None
    msgs = _chat_input(a.get("langfuse.observation.input")) or []
    out = a.get("langfuse.observation.output")
    return Content("langfuse", msgs, _chat_output(out) if out is not None else None)


def _mlflow(a: dict[str, Any], events: list[Event]) -> Content | None:
    """MLflow tracing: the request and response JSON-encoded in mlflow.spanInputs / spanOutputs."""
    if "mlflow.spanInputs" not in a:
        return None
    msgs = _chat_input(a.get("mlflow.spanInputs")) or []
    out = a.get("mlflow.spanOutputs")
    return Content("mlflow", msgs, _chat_output(out) if out is not None else None)


def _gemini_message(d: Any) -> list[Message]:
    """A Gemini Content {role: user | model, parts: [{text} | {function_call} | {function_response}]}."""
    if not isinstance(d, dict):
        return []
    role = "assistant" if d.get("role") == "model" else _role(d.get("role"))
    texts: list[str] = []
    calls: list[ToolCall] = []
    results: list[Message] = []
    for p in d.get("parts") or []:
        if not isinstance(p, dict):
            continue
        if isinstance(p.get("text"), str) and not p.get("thought"):
            texts.append(p["text"])
        fc = p.get("function_call") or p.get("functionCall")
        if isinstance(fc, dict):
            calls.append(ToolCall(name=str(fc.get("name")), arguments=_args_text(fc.get("args", {})),
                                  id=fc.get("id")))
        fr = p.get("function_response") or p.get("functionResponse")
        if isinstance(fr, dict):
            results.append(Message(role="tool", content=_text(fr.get("response", "")),
                                   tool_call_id=fr.get("id"), name=fr.get("name")))
    out = [Message(role=role, content="".join(texts) if texts else None, tool_calls=calls)] \
        if texts or calls else []
    return out + results


def _adk(a: dict[str, Any], events: list[Event]) -> Content | None:
    """Google ADK call_llm spans: the Gemini request and response as JSON."""
    req = maybe_json(a.get(ADK_REQUEST))
    if not isinstance(req, dict):
        return None
    msgs: list[Message] = []
    config = req.get("config") if isinstance(req.get("config"), dict) else {}
    system = config.get("system_instruction")
    if system:
        msgs.append(Message(role="system", content=_text(system) if not isinstance(system, dict)
                            else "".join(_text(p.get("text", "")) for p in system.get("parts") or []
                                         if isinstance(p, dict))))
    for c in req.get("contents") or []:
        msgs.extend(_gemini_message(c))
    output = None
    resp = maybe_json(a.get(ADK_RESPONSE))
    if isinstance(resp, dict) and isinstance(resp.get("content"), dict):
        output = _output_from_messages(_gemini_message(resp["content"]) or [Message("assistant", "")],
                                       resp.get("finish_reason"))
    return Content("google-adk", msgs, output)


def find_content(span: SpanRecord, events: list[Event]) -> Content | None:
    """Try each convention in the priority order of the alias table (§4.4)."""
    a = span.attributes
    for ev in events:  # the details event carries the v1.37 attributes off-span
        if ev.name == DETAILS_EVENT:
            a = {**a, **ev.attributes}
    best: Content | None = None
    for finder in (_otel_137, _openllmetry, _openinference, _otel_events, _otel_126, _vercel,
                   _langfuse, _mlflow, _adk):
        found = finder(a, events)  # lazily: most spans stop at the first convention
        if found is None:
            continue
        if found.messages:
            if best is not None and best.output and not found.output:
                found.output = best.output
            return found
        if best is None:
            best = found  # a convention seen without input: remember it for the label
        elif best.output is None and found.output is not None:
            best.output = found.output
    return best


# ---------------------------------------------------------------------------------------------
# params, usage, provider

def _invocation_params(a: dict[str, Any]) -> dict[str, Any]:
    p = maybe_json(a.get("llm.invocation_parameters"))
    if isinstance(p, dict):
        return p
    p = maybe_json(a.get("langfuse.observation.model.parameters"))
    if isinstance(p, dict):
        return p
    for key in ("input.value", "mlflow.spanInputs"):  # the raw request
        raw = maybe_json(a.get(key))
        if isinstance(raw, dict):
            return {k: v for k, v in raw.items() if k not in ("messages", "tools")}
    req = maybe_json(a.get(ADK_REQUEST))
    if isinstance(req, dict):  # Gemini: the parameters are in the generation config
        config = req.get("config") if isinstance(req.get("config"), dict) else {}
        out = {k: v for k, v in config.items() if isinstance(v, (int, float, str, list)) and k in _GEMINI_PARAMS}
        out = {_GEMINI_PARAMS[k]: v for k, v in out.items()}
        if req.get("model"):
            out["model"] = req["model"]
        return out
    return {}


_GEMINI_PARAMS = {"temperature": "temperature", "top_p": "top_p", "top_k": "top_k",
                  "max_output_tokens": "max_tokens", "seed": "seed", "stop_sequences": "stop",
                  "presence_penalty": "presence_penalty", "frequency_penalty": "frequency_penalty"}


# canonical field -> source keys, first match wins (§4.4). "inv." keys come from OpenInference
# llm.invocation_parameters (or the raw request in input.value).
_PARAM_KEYS: dict[str, tuple[str, ...]] = {
    "model": ("gen_ai.request.model", "llm.request.model_name", "inv.model", "llm.model_name",
              "ai.model.id", "langfuse.observation.model.name", "gen_ai.response.model"),
    "temperature": ("gen_ai.request.temperature", "inv.temperature", "llm.temperature"),
    "top_p": ("gen_ai.request.top_p", "inv.top_p", "llm.top_p"),
    "top_k": ("gen_ai.request.top_k", "inv.top_k", "llm.top_k"),
    "frequency_penalty": ("gen_ai.request.frequency_penalty", "llm.frequency_penalty",
                          "inv.frequency_penalty"),
    "presence_penalty": ("gen_ai.request.presence_penalty", "llm.presence_penalty",
                         "inv.presence_penalty"),
    "max_tokens": ("gen_ai.request.max_tokens", "gen_ai.request.max_completion_tokens",
                   "inv.max_tokens", "inv.max_completion_tokens"),
    "seed": ("gen_ai.request.seed", "gen_ai.openai.request.seed", "inv.seed"),
    "n": ("gen_ai.request.choice.count", "gen_ai.request.n", "inv.n"),
    "stop": ("gen_ai.request.stop_sequences", "llm.chat.stop_sequences", "inv.stop"),
    "response_format": ("gen_ai.output.type", "gen_ai.openai.request.response_format",
                        "inv.response_format"),
    "reasoning_effort": ("gen_ai.request.reasoning.level", "gen_ai.request.reasoning_effort",
                         "llm.request.reasoning_effort", "inv.reasoning_effort"),
    "stream": ("gen_ai.request.stream", "gen_ai.is_streaming", "llm.is_streaming", "inv.stream"),
}
_USAGE_KEYS: dict[str, tuple[str, ...]] = {
    "input_tokens": ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt",
                     "ai.usage.inputTokens", "ai.usage.promptTokens"),
    "output_tokens": ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens",
                      "llm.token_count.completion", "ai.usage.outputTokens", "ai.usage.completionTokens"),
    "cached_tokens": ("gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_read_input_tokens",
                      "llm.token_count.prompt_details.cache_read", "gen_ai.usage.cached_tokens",
                      "ai.usage.cachedInputTokens"),
    "total_tokens": ("gen_ai.usage.total_tokens", "llm.usage.total_tokens", "llm.token_count.total"),
    "reasoning_tokens": ("gen_ai.usage.reasoning.output_tokens", "gen_ai.usage.reasoning_tokens",
                         "llm.usage.reasoning_tokens", "llm.token_count.completion_details.reasoning"),
}


def _alias_index(table: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, int]]:
    return {key: (name, rank) for name, keys in table.items() for rank, key in enumerate(keys)}


_PARAM_ALIAS = _alias_index(_PARAM_KEYS)


def _pick_aliases(alias: dict[str, tuple[str, int]], *sources: tuple[str, dict]) -> dict[str, Any]:
    """One pass over the attributes (not one lookup per alias): the best-ranked value per field."""
    best: dict[str, tuple[int, Any]] = {}
    for prefix, d in sources:
        if not d:
            continue
        if prefix:
            hits = [(alias.get(prefix + k), v) for k, v in d.items()]
        else:  # the attributes: only the keys that are aliases (a set intersection, in C)
            hits = [(alias[k], d[k]) for k in d.keys() & alias.keys()]
        for hit, v in hits:
            if hit is None or v is None or v == "":
                continue
            name, rank = hit
            if name not in best or rank < best[name][0]:
                best[name] = (rank, v)
    return {name: v for name, (_, v) in best.items()}


def _stop_list(v: Any) -> list[str] | None:
    stop = _as_list(v)
    return [str(s) for s in stop] if stop else None


def _int_if_whole(v: Any) -> Any:
    f = _num(v)
    return int(f) if f is not None and f.is_integer() else f


def _response_format(v: Any) -> Any:
    """As the chat API takes it: gen_ai.output.type "json" (or OpenAI's "json_object") becomes
    {"type": "json_object"}; "text"/"image"/"speech" and a bare "json_schema" (its schema was not
    recorded) are left out; a recorded object (OpenInference invocation params) is kept."""
    v = maybe_json(v)
    if isinstance(v, dict):
        return v
    if str(v).lower() in ("json", "json_object"):
        return {"type": "json_object"}
    return None


_PARAM_CONV: dict[str, Callable[[Any], Any]] = {
    "model": str, "temperature": _num, "top_p": _num, "top_k": _int_if_whole,
    "frequency_penalty": _num, "presence_penalty": _num,
    "max_tokens": lambda v: _num(v, int), "seed": lambda v: _num(v, int), "n": lambda v: _num(v, int),
    "stop": _stop_list, "response_format": _response_format, "reasoning_effort": str,
    "stream": lambda v: v is True or str(v).lower() == "true",
}


def _first_present(a: dict[str, Any], planned: tuple) -> dict[str, Any]:
    """Per field, the value of its best-ranked alias key that is set (``_pick_aliases`` for
    the attributes alone, with the keys to look at worked out once per key set)."""
    out = {}
    for name, keys in planned:
        for k in keys:
            v = a[k]
            if v is not None and v != "":
                out[name] = v
                break
    return out


def request_params(a: dict[str, Any]) -> dict[str, Any]:
    """The recorded request parameters, in the chat-completions form replay sends (``n`` and
    ``stream`` are kept as a record; the replay engine decides what it sends)."""
    inv = _invocation_params(a)
    raw = (_pick_aliases(_PARAM_ALIAS, ("", a), ("inv.", inv)) if inv
           else _first_present(a, _key_plan(a).params))
    params = {}
    for name in _PARAM_KEYS:  # a stable key order
        if name in raw:
            v = _PARAM_CONV[name](raw[name])
            if v is not None:
                params[name] = v
    return params


def _usage(a: dict[str, Any]) -> dict[str, int | None]:
    raw = _first_present(a, _key_plan(a).usage)
    if "input_tokens" not in raw:
        raw = {**_vendor_usage(a), **raw}
    return {name: _num(raw[name], int) if name in raw else None for name in _USAGE_KEYS}


_VENDOR_USAGE = {  # usage objects of Langfuse (usage_details) and Gemini (usage_metadata)
    "input": "input_tokens", "output": "output_tokens", "total": "total_tokens",
    "prompt_token_count": "input_tokens", "candidates_token_count": "output_tokens",
    "total_token_count": "total_tokens", "cached_content_token_count": "cached_tokens",
    "thoughts_token_count": "reasoning_tokens",
}


def _vendor_usage(a: dict[str, Any]) -> dict[str, Any]:
    usage = maybe_json(a.get("langfuse.observation.usage_details"))
    if not isinstance(usage, dict):
        resp = maybe_json(a.get(ADK_RESPONSE))
        usage = resp.get("usage_metadata") if isinstance(resp, dict) else None
    if not isinstance(usage, dict):
        return {}
    return {_VENDOR_USAGE[k]: v for k, v in usage.items() if k in _VENDOR_USAGE and v is not None}


def provider_of(span: SpanRecord) -> str | None:
    a = span.attributes
    p = _first(a.get("gen_ai.provider.name"), a.get("gen_ai.system"), a.get("llm.provider"),
               a.get("llm.system"), a.get("ai.model.provider"))
    return str(p).lower() if p is not None else None


def prompt_vars(a: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("llm.prompt_template.variables", "traceloop.prompt.template_variables"):
        v = maybe_json(a.get(key))
        if isinstance(v, dict):
            out.update(v)
    lead = _PROMPT_VARIABLE
    for k in _key_plan(a).var_keys:
        out[k[len(lead):]] = a[k]
    return out


_CONTENT_KEYS = frozenset({
    "gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions",
    "gen_ai.system.instructions", "gen_ai.tool.definitions", "gen_ai.prompt", "gen_ai.completion",
    "input.value", "output.value", "llm.invocation_parameters", "llm.prompt_template.template",
    "llm.prompt_template.variables", "traceloop.entity.input", "traceloop.entity.output",
    "ai.prompt", "ai.prompt.messages", "ai.prompt.tools", "ai.response.text", "ai.response.toolCalls",
    "ai.response.object", "ai.response.providerMetadata",
    "langfuse.observation.input", "langfuse.observation.output", "langfuse.trace.input",
    "langfuse.trace.output", "mlflow.spanInputs", "mlflow.spanOutputs", ADK_REQUEST, ADK_RESPONSE,
    ADK_TOOL_ARGS, "gcp.vertex.agent.tool_response"})
_CONTENT_PREFIXES = ("gen_ai.prompt.", "gen_ai.completion.", "llm.input_messages.",
                     "llm.output_messages.", "llm.tools.", "llm.request.functions.", "llm.prompts.",
                     "llm.choices.", "gen_ai.tool.definitions.", "retrieval.documents.")


def _is_content_key(k: str) -> bool:
    if k in _CONTENT_KEYS:
        return True
    if not k.startswith(_CONTENT_PREFIXES):
        return False
    # gen_ai.prompt.name / .version / .variable.* are plain metadata, .N.* is content
    for p in ("gen_ai.prompt.", "gen_ai.completion."):
        if k.startswith(p):
            return k[len(p):len(p) + 1].isdigit()
    return True


# Credentials recorded by instrumentations (OpenLLMetry's llm.headers, captured HTTP headers)
# must not reach cases.jsonl or run files: such keys are dropped, key-like values masked.
_SECRET_KEY = re.compile(r"api[_.-]?key|authori[sz]ation|secret|passw(or)?d|cookie|headers?\b|credential",
                         re.IGNORECASE)
_SECRET_VALUE = re.compile(r"\b(sk-[A-Za-z0-9_-]{16,}|(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{12,})")
REDACTED = "[REDACTED]"

_dropped_key_memo: dict[str, bool] = {}  # attribute names repeat across spans


def _drop_key(k: str) -> bool:
    return _is_content_key(k) or _SECRET_KEY.search(k) is not None


def redact(value: Any) -> Any:
    if isinstance(value, str):
        return _SECRET_VALUE.sub(REDACTED, value) if ("sk-" in value or "earer" in value
                                                      or "asic" in value) else value
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def _kept_keys(keys: Iterable[str]) -> tuple[str, ...]:
    memo = _dropped_key_memo
    kept = []
    for k in keys:
        drop = memo.get(k)
        if drop is None:
            drop = _drop_key(k)
            if len(memo) < 50_000:  # indexed keys (gen_ai.prompt.N...) must not grow it forever
                memo[k] = drop
        if not drop:
            kept.append(k)
    return tuple(kept)


def filterable_attributes(a: dict[str, Any]) -> dict[str, Any]:
    """The attributes minus message content and credentials (kept small for `where` filters)."""
    out = {}
    for k in _key_plan(a).kept:
        v = a[k]
        # redact's own tests inlined for the common values (short strings and numbers):
        # a string without a credential marker and a number are kept as they are
        t = type(v)
        if t is str:
            out[k] = v if "sk-" not in v and "earer" not in v and "asic" not in v else redact(v)
        elif t is int or t is float or t is bool:
            out[k] = v
        else:
            out[k] = redact(v)
    return out


_PROMPT_VARIABLE = "gen_ai.prompt.variable."


@dataclass(frozen=True, slots=True)
class _KeyPlan:
    """What extraction needs from the attribute names alone. Spans of one instrumentation
    share their set of names, so this is worked out once per set instead of scanning every
    name of every span again in each helper."""
    kept: tuple[str, ...]  # filterable_attributes' keys (not content, not credentials)
    var_keys: tuple[str, ...]  # gen_ai.prompt.variable.*
    has_tools: bool  # any tool-definition key
    usage: tuple[tuple[str, tuple[str, ...]], ...]  # usage field -> its alias keys present, best first
    params: tuple[tuple[str, tuple[str, ...]], ...]  # the same for the request parameters
    refs: tuple[str, ...]  # content stored by reference (gen_ai.input.messages_ref ...)


def _aliases_present(keys: tuple[str, ...], table: dict[str, tuple[str, ...]]) -> tuple:
    present = set(keys)
    return tuple((name, hits) for name, aliases in table.items()
                 if (hits := tuple(k for k in aliases if k in present)))


_key_plans: dict[tuple[str, ...], _KeyPlan] = {}
_KEY_PLAN_MAX_KEYS = 64  # bigger (indexed) key sets are planned per call, not remembered


def _key_plan(a: dict[str, Any]) -> _KeyPlan:
    keys = tuple(a)
    plan = _key_plans.get(keys)
    if plan is None:
        plan = _KeyPlan(_kept_keys(keys), tuple(k for k in keys if k.startswith(_PROMPT_VARIABLE)),
                        any(k.startswith(_TOOL_PREFIXES) for k in keys),
                        _aliases_present(keys, _USAGE_KEYS), _aliases_present(keys, _PARAM_KEYS),
                        tuple(k for k in keys if k in content_refs.REF_KEYS))
        if len(keys) <= _KEY_PLAN_MAX_KEYS:
            if len(_key_plans) >= 1024:
                _key_plans.clear()
            _key_plans[keys] = plan
    return plan


_resource_memo: dict[int, tuple[dict, dict]] = {}


def _resource_view(resource: dict[str, Any]) -> dict[str, Any]:
    """The redacted resource, computed once per resource object (spans of a batch share it)."""
    hit = _resource_memo.get(id(resource))
    if hit is not None and hit[0] is resource:
        return hit[1]
    view = filterable_attributes(resource)
    if len(_resource_memo) > 1024:
        _resource_memo.clear()
    _resource_memo[id(resource)] = (resource, view)
    return view


# ---------------------------------------------------------------------------------------------
# the case

SKIP_NO_CONTENT = "no content captured"
SKIP_ERROR = "error span"
SKIP_MALFORMED = "malformed content"


@dataclass
class Extraction:
    case: Case | None
    convention: str
    skip: str | None = None


def _detect_label(span: SpanRecord) -> str:
    a = span.attributes
    if "openinference.span.kind" in a or any(k.startswith("llm.") for k in a):
        return "openinference" if "openinference.span.kind" in a else "openllmetry"
    return "otel-genai-1.37" if "gen_ai.provider.name" in a else "otel-genai"


_SHAPE_ERRORS = (TypeError, AttributeError, ValueError, KeyError, IndexError, OverflowError)


def extract(span: SpanRecord, events: list[Event], operation: str | None = None,
            include_errors: bool = False, refs: content_refs.RefReader | None = None) -> Extraction:
    """Case for one inference span, or the reason it was skipped. Attribute values of an
    unexpected shape make the span count as malformed instead of failing the import. Content
    stored by reference is read through ``refs`` (see ``refs.py``)."""
    try:
        return _extract(span, events, operation, include_errors, refs)
    except _SHAPE_ERRORS:
        return Extraction(None, _detect_label(span), SKIP_MALFORMED)


def _extract(span: SpanRecord, events: list[Event], operation: str | None,
             include_errors: bool, refs: content_refs.RefReader | None = None) -> Extraction:
    a = span.attributes
    ref_problem = None
    ref_keys = _key_plan(a).refs
    if ref_keys:
        a, ref_problem = content_refs.resolve(a, ref_keys, refs)
        span = dataclasses.replace(span, attributes=a)
    content = find_content(span, events)
    is_error = span.status_code == 2 or a.get("error.type") is not None
    if content is None or not content.messages:
        label = (content.convention if content else _detect_label(span)) + " (no content)"
        return Extraction(None, label, SKIP_ERROR if is_error and not include_errors
                          else ref_problem or SKIP_NO_CONTENT)
    convention = content.convention
    if is_error and not include_errors:
        return Extraction(None, convention, SKIP_ERROR)

    usage = _usage(a)
    out = content.output or _Output()
    finish = normalize_finish_reason(_first(a.get("gen_ai.response.finish_reasons"),
                                            a.get("gen_ai.response.finish_reason"),
                                            a.get("llm.response.finish_reason"),
                                            a.get("llm.finish_reason"))) or out.finish_reason
    ttfc = _num(a.get("gen_ai.response.time_to_first_chunk"))
    error = None
    if is_error:
        error = ErrorInfo(type=str(a.get("error.type") or "SpanError"),
                          message=span.status_message or str(a.get("error.type") or "error status"))
    recorded = Recorded(
        output=out.text, tool_calls=list(out.tool_calls or []), finish_reason=finish,
        latency_ms=(span.end_ns - span.start_ns) / 1e6 if span.end_ns >= span.start_ns > 0 else None,
        ttft_ms=ttfc * 1000.0 if ttfc is not None else None,
        input_tokens=usage["input_tokens"], output_tokens=usage["output_tokens"],
        cached_tokens=usage["cached_tokens"],
        cost_usd=_num(_first(a.get("llm.cost.total"), a.get("gen_ai.usage.cost"))),
        error=error)
    tools = _tools(a) or _request_tools(a)
    warnings = [f"tool definition without parameters: {t['function'].get('name')}"
                for t in tools if not t["function"].get("parameters")]
    if content.output is None and not is_error:
        warnings.append("no output recorded")
    odd = sorted({str(p.get("type")) for m in content.messages if isinstance(m.content, list)
                  for p in m.content if p.get("type") not in ("text", "image_url")})
    if odd:  # kept as recorded, but a chat-completions provider will not take them
        warnings.append(f"content parts the chat API may not accept: {', '.join(odd)}")
    metadata: dict[str, Any] = {
        "source": span.source, "trace_id": span.trace_id, "span_id": span.span_id,
        "parent_span_id": span.parent_span_id, "span_name": span.name,
        "service": span.resource.get("service.name"), "provider": provider_of(span),
        "operation": operation, "convention": convention,
        "response_model": _first(a.get("gen_ai.response.model"), a.get("llm.response.model_name"),
                                 a.get("llm.model_name")),  # OpenInference: response model when known
        "response_id": a.get("gen_ai.response.id"),
        "conversation_id": _first(a.get("gen_ai.conversation.id"), a.get("session.id"),
                                  a.get("langfuse.session.id")),
        "start_time_unix_nano": span.start_ns,
        "usage": {k: v for k, v in usage.items() if v is not None},
        "attributes": filterable_attributes(a),
        "resource": _resource_view(span.resource),
    }
    template = _first(a.get("llm.prompt_template.template"), a.get("traceloop.prompt.template"))
    if template is not None:
        metadata["prompt_template"] = template
    prompt_name = _first(a.get("gen_ai.prompt.name"), a.get("traceloop.prompt.key"))
    if prompt_name is not None:
        metadata["prompt_name"] = prompt_name
    evaluations = recorded_evaluations(events)
    if evaluations:
        metadata["evaluations"] = evaluations
    if warnings:
        metadata["warnings"] = warnings
    params = request_params(a)
    n = params.pop("n", None)  # replay compares one answer; asking for n would multiply the cost
    if n is not None and n != 1:
        metadata["request_n"] = n
    case = Case(id=f"{span.trace_id}:{span.span_id}", messages=content.messages, tools=tools,
                params=params, vars=prompt_vars(a), recorded=recorded,
                metadata={k: v for k, v in metadata.items() if v is not None})
    return Extraction(case, convention)


def recorded_evaluations(events: list[Event]) -> list[dict[str, Any]]:
    """Evaluations already attached to the call (gen_ai.evaluation.result events), kept so
    reports can show them next to replaygate's own scores."""
    out = []
    for ev in events:
        if ev.name != EVALUATION_EVENT:
            continue
        a = ev.attributes
        item = {"name": a.get("gen_ai.evaluation.name"), "score": _num(a.get("gen_ai.evaluation.score.value")),
                "label": a.get("gen_ai.evaluation.score.label"),
                "explanation": a.get("gen_ai.evaluation.explanation"), "error": a.get("error.type")}
        out.append({k: v for k, v in item.items() if v is not None})
    return out


# ---------------------------------------------------------------------------------------------
# retrieval context

def _openinference_documents(a: dict[str, Any]) -> list[str]:
    for prefix in ("reranker.output_documents", "retrieval.documents"):
        docs = []
        for d in rebuild_indexed(a, prefix):
            doc = d.get("document", d) if isinstance(d, dict) else d
            text = doc.get("content") if isinstance(doc, dict) else doc
            if text:
                docs.append(_text(text))
        if docs:
            return docs
    return []


# What the import's first pass looks for (otlp.decode_unit_for_join): a span can only give
# documents when one of these appears in it (every key and event name _retrieval_documents
# reads contains one), and a GenAI log event's name always starts with "gen_ai.".
JOIN_SPAN_MARKERS = ("documents", "db.query.result")
JOIN_LOG_MARKERS = ("gen_ai.",)


def retrieval_documents(span: SpanRecord) -> list[str]:
    """Document texts a retrieval (or reranker) span returned, in any convention. Raises
    ValueError when the documents have an unexpected shape."""
    try:
        return _retrieval_documents(span)
    except _SHAPE_ERRORS as e:
        raise ValueError(f"retrieval documents of unexpected shape: {e}") from None


def _retrieval_documents(span: SpanRecord) -> list[str]:
    a = span.attributes
    for k in a:
        if k.startswith(("reranker.output_documents.", "retrieval.documents.")):
            docs = _openinference_documents(a)
            if docs:
                return docs
            break
    docs = []
    raw = maybe_json(a.get("gen_ai.retrieval.documents"))
    if isinstance(raw, list):
        for d in raw:
            text = _first(d.get("content"), d.get("text"), d.get("page_content"), d.get("document")) \
                if isinstance(d, dict) else d
            if text:
                docs.append(_text(text))
    for ev in span.events:  # OpenLLMetry vector-DB spans
        if ev.name == "db.query.result" and ev.attributes.get("db.query.result.document"):
            docs.append(_text(ev.attributes["db.query.result.document"]))
    return docs
