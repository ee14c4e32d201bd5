"""Value and message shapes shared by the conventions: JSON text, flattened indexed keys,
OpenAI / OTel / OpenInference messages and parts, outputs and tool definitions."""
from __future__ import annotations

import json
import math
from typing import Any

from replaygate import fastjson
from replaygate.model import Message, ToolCall
from replaygate.sources.conventions.base import Output

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


def to_num(x: Any, conv=float) -> Any:
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


def first_set(*values: Any) -> Any:
    for v in values:
        if v is not None and v != "":
            return v
    return None


def to_list(x: Any) -> list | None:
    """A list, a JSON-array string or a single string -> list."""
    x = maybe_json(x)
    if x is None:
        return None
    if isinstance(x, (list, tuple)):
        return list(x)
    return [x]


def args_text(x: Any) -> str:
    if x is None:
        return "{}"
    if isinstance(x, str):
        return x
    return json.dumps(x, ensure_ascii=False)


def to_text(x: Any) -> str:
    return x if isinstance(x, str) else json.dumps(x, ensure_ascii=False)


_ROLE = {"developer": "system", "instruction": "system", "human": "user", "ai": "assistant",
         "model": "assistant", "bot": "assistant", "function": "tool", "ipython": "tool"}


def norm_role(r: Any, default: str = "user") -> str:
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
    if "," in r:  # Semantic Kernel joins the choices' reasons: "FinishReason.STOP,FinishReason.STOP"
        r = r.split(",", 1)[0].strip()
    if r.startswith(_SK_ENUM):  # Semantic Kernel records str() of its enum: "FinishReason.TOOL_CALLS"
        r = r[len(_SK_ENUM):]
    return _FINISH.get(r, r)


_SK_ENUM = "finishreason."


# ---------------------------------------------------------------------------------------------
# message shapes -> model.Message

def parse_tool_call(tc: Any) -> ToolCall | None:
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
    return ToolCall(name=str(name), arguments=args_text(fn.get("arguments")), id=tc.get("id"))


def content_parts(content: Any) -> str | list[dict] | None:
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
        return to_text(content)
    text = text_parts(content)
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
                parts.append({"type": "text", "text": to_text(txt)})
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
    role = norm_role(d.get("role"), default_role)
    calls = [c for c in (parse_tool_call(tc) for tc in d.get("tool_calls") or []) if c]
    if isinstance(d.get("function_call"), dict):
        c = parse_tool_call(d["function_call"])
        if c:
            calls.append(c)
    content = d.get("content")
    if content is None and "contents" in d:  # OpenInference multi-part
        content = d["contents"]
    tool_call_id = d.get("tool_call_id") or (d.get("id") if role == "tool" else None)
    return [Message(role=role, content=content_parts(content), tool_calls=calls,
                    tool_call_id=tool_call_id, name=d.get("name"))]


def text_parts(parts: Any) -> str | None:
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
    text = text_parts(d["parts"])
    hybrid = "tool_calls" in d or "tool_call_id" in d  # LiteLLM: OpenAI keys beside the parts
    if text is not None and not hybrid:  # fast path: only text parts, as content_parts would join them
        return [Message(role=norm_role(d.get("role"), default_role), content=text, tool_calls=[],
                        name=d.get("name"))]
    role = norm_role(d.get("role"), default_role)
    other_parts: list = []
    calls: list[ToolCall] = []
    if hybrid:
        calls.extend(c for c in (parse_tool_call(tc) for tc in d.get("tool_calls") or []) if c)
    out: list[Message] = []
    for p in d.get("parts") or []:
        t = p.get("type") if isinstance(p, dict) else None
        if t == "tool_call":
            c = parse_tool_call(p)
            if c:
                calls.append(c)
        elif t == "tool_call_response":
            resp = first_set(p.get("response"), p.get("result"), p.get("content"))
            tid = p.get("id")
            out.append(Message(role="tool", content=to_text(resp) if resp is not None else "",
                               tool_call_id=tid.strip() if isinstance(tid, str) else tid))
        else:
            other_parts.append(p)
    if other_parts or calls or not out:
        content = content_parts(other_parts) if other_parts else None
        out.insert(0, Message(role=role, content=content, tool_calls=calls, name=d.get("name"),
                              tool_call_id=d.get("tool_call_id") if hybrid else None))
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


def system_message(value: Any) -> Message | None:
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
    return Message(role="system", content=content_parts(value))


def output_from_messages(msgs: list[Message], finish: Any = None) -> Output | None:
    assistant = [m for m in msgs if m.role != "tool"]
    if not assistant:
        return None
    m = assistant[0]  # the first choice is the one that was used
    text = m.content if isinstance(m.content, str) or m.content is None else to_text(m.content)
    return Output(text, list(m.tool_calls), normalize_finish_reason(finish))


def otel_output(value: Any) -> Output | None:
    value = maybe_json(value)
    if isinstance(value, dict):
        value = [value]  # Gemini CLI sends a single object
    if isinstance(value, str):
        return Output(value)
    if not isinstance(value, list) or not value:
        return None
    first = value[0]
    msgs = otel_message(first, "assistant")
    return output_from_messages(msgs, first.get("finish_reason") if isinstance(first, dict) else None)


def tool_def(d: Any) -> dict | None:
    """OTel flat {type, name, description, parameters} or OpenAI nested -> OpenAI nested."""
    d = maybe_json(d)
    if not isinstance(d, dict):
        return None
    if isinstance(d.get("tool"), dict):  # OpenInference llm.tools.N.tool.json_schema
        return tool_def(d["tool"].get("json_schema") or d["tool"])
    if isinstance(d.get("function"), dict):
        fn = dict(d["function"])
    elif d.get("name"):
        fn = {k: v for k, v in d.items() if k != "type"}
    else:
        return None
    for schema_key in ("inputSchema", "input_schema", "parameters_json_schema"):  # Vercel 5+, Anthropic, Pydantic AI
        if schema_key in fn and "parameters" not in fn:
            fn["parameters"] = fn.pop(schema_key)
    if "parameters" in fn:
        fn["parameters"] = maybe_json(fn["parameters"])
    return {"type": "function", "function": fn}


def chat_output(value: Any) -> Output | None:
    """A recorded response in the shapes vendors store: a chat completion ({choices: [...]}),
    one message, a list of messages, or plain text."""
    value = maybe_json(value)
    if isinstance(value, str):
        return Output(value)
    if isinstance(value, list) and value:
        value = value[0]
    if not isinstance(value, dict):
        return None
    choices = value.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        ch = choices[0]
        msg = ch.get("message") if isinstance(ch.get("message"), dict) else {"content": ch.get("text")}
        return output_from_messages(openai_message(msg, "assistant"), ch.get("finish_reason"))
    return output_from_messages(otel_message(value, "assistant"), value.get("finish_reason"))


def chat_input(value: Any) -> list[Message] | None:
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
