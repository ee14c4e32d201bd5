"""A local OpenAI-compatible HTTP server for tests and benches (never the network).

Runs in its own process (aiohttp) so a client under test or bench never shares its GIL.
Use it from pytest through the ``llm_server`` fixture (tests/conftest.py), or from any script:

    from fakeserver import FakeServer
    with FakeServer() as srv:                     # spawns `python fakeserver.py --port 0`
        litellm.completion(model="openai/echo", api_base=srv.api_base, api_key="sk-test", ...)
        srv.stats()["count"]

or stand-alone: ``python tests/fakeserver.py --port 8011`` (prints ``PORT 8011`` when ready).

Endpoints
---------
POST /v1/chat/completions   JSON, or SSE when ``stream: true`` (a final usage chunk when
                            ``stream_options.include_usage``). Usage in every response: tokens are
                            whitespace-separated words (input = words of all message contents,
                            output = words of the answer). An answer longer than ``max_tokens``
                            words is cut there with ``finish_reason: length``.
POST /v1/embeddings         deterministic hashed bag-of-words vectors (64 dims, L2-normalised), so
                            texts sharing words have a high cosine similarity.
POST /v1/files              multipart upload (``file``, ``purpose``) -> a file object.
GET  /v1/files/ID[/content] the file object / its bytes (a batch's output and error files too).
POST /v1/batches            OpenAI Batch API: ``input_file_id``, ``endpoint``,
                            ``completion_window``. The input file is checked as OpenAI does
                            (POST, the endpoint as url, unique ``custom_id``, one model) and every
                            line answered at once as the live endpoint would (recorded in the stats
                            under ``batch:/v1/chat/completions``; a non-200 answer goes to the
                            error file); the answers show only as the batch is retrieved.
GET  /v1/batches/ID         each retrieve moves the batch one step, scripted by the ``batch``
                            config: validating -> in_progress (``polls`` retrieves, default 1)
                            -> finalizing -> ``end``: ``completed`` (default), ``expired`` /
                            ``cancelled`` (the first ``done`` lines answered, the rest in the error
                            file with code ``batch_expired`` / ``batch_cancelled``) or ``failed``
                            (``errors``, no files; also when the input file is invalid).
                            ``hold: true`` keeps every open batch where it is.
                            The stats count creations under ``/v1/batches``, retrieves under
                            ``/v1/batches/retrieve``.
GET  /_stats                ``{"count", "by_path", "requests": [{"t", "path", "model", "prompt",
                            "sha256", "status", "body"}]}`` (``t`` = wall-clock arrival time;
                            ``?bodies=0`` omits bodies, ``?summary=1`` omits the request list).
POST /_reset                clears stats, per-prompt failure counters and config.
POST /_config               JSON merged into the config: ``answers`` {prompt: answer},
                            ``wrong_answer`` (text), ``options`` (default options for every model,
                            same keys as below), ``seed`` (for ``noisy-P``), ``aliases``
                            {model name: MODEL in the grammar below}, so an example config can
                            use realistic names (``support-small`` -> ``wrong-15@latency=90``),
                            ``error_message`` (text of every error body: a hostile provider),
                            ``echo_key`` (error bodies quote the caller's API key: ``exact``,
                            ``prefix`` (its first 20 characters), ``one`` / ``two`` characters
                            replaced), ``batch`` (the scripted batch progression: ``polls``,
                            ``end``, ``done``, ``hold``; see /v1/batches).

Model-name grammar (the part after litellm's ``openai/`` prefix)
---------------------------------------------------------------
    MODEL    := BEHAVIOUR [ "@" OPTION ("," OPTION)* ]        (options start at the LAST "@")
    BEHAVIOUR:
      echo          answers the last user message verbatim
      answers       looks the last user message up in the configured ``answers`` (else "UNKNOWN")
      wrong-P       like ``answers`` but answers ``wrong_answer`` for a fixed P% of prompts
                    (chosen by a hash of the prompt: the same prompts every time)
      noisy-P       like ``answers`` but wrong with probability P% on each request (random; A/A noise)
      const:TEXT    always TEXT
      tool:NAME     a tool call NAME with arguments {"query": <last user message>}
      json          a JSON object {"answer": <last user message>, "words": <word count>}
      judge         an LLM judge whose verdicts are a known function of the tagged sections of
                    the first user message (<question>, <answer>, <reference>, <context> with
                    <doc index="i">, <answer_a>, <answer_b>; HTML-escaped): see ``judge_reply``
      anything else behaves as ``echo``
    OPTION:
      latency=MS      fixed delay before answering
      jitter=MS       extra uniform random delay in [0, MS]
      fail=N          HTTP 500 for the first N requests of each (model, prompt)
      r429=N          HTTP 429 for the first N requests of each (model, prompt) ...
      retry_after=S   ... with ``Retry-After: S`` (default 1)
      status=CODE     always answer HTTP CODE (401 auth, 400 bad request, 404 model not found, ...)
      hang=MS         sleep MS before answering (set it beyond the client timeout)
      ttft=MS         streaming: delay before the first chunk
      chunk_delay=MS  streaming: delay between chunks
      cached=N        report N cached prompt tokens (capped at the input tokens; 0 still sends
                      usage.prompt_tokens_details, as OpenAI always does)
      malformed=N     judge: the first N requests with the same first user message get prose,
                      not JSON (not when the request has a ``response_format``: constrained
                      decoding cannot write prose)
      placeholder=N   judge: the first N requests with the same first user message get the
                      prompt's shape copied back ({"reason": "<one or two sentences>", "score": 0})
      no_schema       HTTP 400 for any request with a ``response_format`` (a provider without
                      structured output)
      json_object_only  HTTP 500 naming the field for ``response_format: {type: json_schema}``;
                      ``json_object`` (with a ``schema``) accepted, as llama-cpp-python's server does
      first           judge: pairwise verdicts always pick answer A (a position-biased judge)
      p500=P          random faults, drawn per request from the ``seed``-ed generator: P% HTTP 500,
      p429=P          P% HTTP 429 (with ``retry_after``),
      phang=P         P% hang for ``hang_ms`` (default 5000) before answering,
      pdrop=P         P% connection closed without an answer
      fenced          judge: wrap the JSON reply in a Markdown code fence
      bad_json        answer HTTP 200 with a body that is not JSON (a broken proxy); streamed: a
                      data line that is not JSON
      no_usage        report no token usage: no `usage` in a response, no usage chunk in a stream
                      even when asked (llama.cpp's server streams without one)
e.g. ``openai/echo@latency=100,jitter=20`` or ``openai/answers@fail=2``.
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import os
import random
import re
import subprocess
import sys
import time
import urllib.request
from typing import Any

EMBED_DIMS = 64
_WORD = re.compile(r"\w+", re.UNICODE)


# ---------------------------------------------------------------- pure helpers (no aiohttp)

def parse_model(model: str) -> tuple[str, dict[str, str]]:
    """'openai/echo@latency=5,auth' -> ('echo', {'latency': '5', 'auth': ''})."""
    if "/" in model and not model.startswith(("const:", "tool:")):
        model = model.split("/", 1)[1]
    behaviour, opts = model, {}
    if "@" in model:
        head, tail = model.rsplit("@", 1)
        if all(re.fullmatch(r"\w+(=[\w.]*)?", part) for part in tail.split(",")):
            behaviour = head
            for part in tail.split(","):
                k, _, v = part.partition("=")
                opts[k] = v
    return behaviour, opts


def content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content if isinstance(p, dict))


def last_user_text(messages: list[dict]) -> str:
    for m in reversed(messages or []):
        if m.get("role") == "user":
            return content_text(m.get("content"))
    return ""


def count_words(text: str) -> int:
    return len(text.split())


def embed_text(text: str) -> list[float]:
    """Hashed bag of words: each word adds +-1 to one of EMBED_DIMS buckets; L2-normalised."""
    vec = [0.0] * EMBED_DIMS
    for word in _WORD.findall(text.lower()):
        h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "big")
        vec[h % EMBED_DIMS] += 1.0 if (h >> 32) & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vec))
    if norm == 0:
        vec[0], norm = 1.0, 1.0
    return [v / norm for v in vec]


def _section(prompt: str, tag: str) -> str | None:
    import html
    m = re.search(rf"<{tag}>(.*?)</{tag}>", prompt, re.DOTALL)
    return None if m is None else html.unescape(m.group(1)).strip()


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def _coverage(text: str, target: str) -> float:
    want = _words(target)
    return len(want & _words(text)) / len(want) if want else 1.0


def judge_reply(prompt: str, opts: dict[str, str]) -> dict:
    """The ``judge`` persona's verdict, by what the prompt asks for:

    - pairwise (``<answer_a>``): the answer covering more distinct words of <reference> (else of
      <question>) wins, equal is "tie"; option ``first`` always answers "A".
    - claims (the prompt mentions ``"claims"``): <answer> (else <reference>) split into sentences
      at . ! ?; a claim is supported when every one of its words occurs in <context>.
    - verdicts (mentions ``"verdicts"``): each <doc index="i"> is relevant when it holds at least
      half of the distinct words of <reference> (else <question>).
    - otherwise a score: round(10 * share of the distinct words of <reference> (else <question>)
      found in <answer>), an integer 0..10.
    """
    import html
    question = _section(prompt, "question") or ""
    target = _section(prompt, "reference") or question
    if "<answer_a>" in prompt:
        a = _coverage(_section(prompt, "answer_a") or "", target)
        b = _coverage(_section(prompt, "answer_b") or "", target)
        winner = "A" if "first" in opts or a > b else ("B" if b > a else "tie")
        return {"reason": f"coverage A={a:.2f} B={b:.2f}", "winner": winner}
    context = _section(prompt, "context") or ""
    if '"claims"' in prompt:
        source = _section(prompt, "answer")
        source = source if source is not None else (_section(prompt, "reference") or "")
        known = _words(re.sub(r"<[^>]+>", " ", context))
        claims = [c.strip() for c in re.split(r"(?<=[.!?])\s+", source) if c.strip()]
        return {"claims": [{"claim": c, "supported": _words(c) <= known,
                            "reason": "all words in context" if _words(c) <= known else "not in context"}
                           for c in claims]}
    if '"verdicts"' in prompt:
        docs = re.findall(r'<doc index="(\d+)">(.*?)</doc>', context, re.DOTALL)
        want = _words(target)
        return {"verdicts": [{"index": int(i), "relevant": len(want & _words(html.unescape(d))) * 2 >= len(want),
                              "reason": "word overlap"} for i, d in docs]}
    cov = _coverage(_section(prompt, "answer") or "", target)
    return {"reason": f"covers {cov:.2f} of the expected words", "score": round(10 * cov)}


def _pct_hash(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest(), 16) % 100


class Behaviour:
    """State shared by all requests: config, counters, stats."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.config: dict[str, Any] = {"answers": {}, "wrong_answer": "Sorry, I cannot answer that.",
                                       "options": {}, "seed": None}
        self.counters: dict[tuple[str, str], int] = {}
        self.requests: list[dict] = []
        self.by_path: dict[str, int] = {}
        self.rng = random.Random(0)
        self.files: dict[str, dict] = {}  # id -> {"meta": file object, "data": bytes}
        self.batches: dict[str, dict] = {}  # id -> {"obj": batch object, "polls": n, ...}

    def configure(self, cfg: dict) -> None:
        for k, v in cfg.items():
            if k in ("answers", "options") and isinstance(v, dict):
                self.config[k].update(v)
            else:
                self.config[k] = v
        if "seed" in cfg:
            self.rng = random.Random(cfg["seed"])

    def record(self, path: str, body: dict, raw: bytes) -> dict:
        entry = {"t": time.time(), "path": path, "model": body.get("model"),
                 "prompt": last_user_text(body.get("messages") or [])
                 if "messages" in body else body.get("input"),
                 "sha256": hashlib.sha256(raw).hexdigest(), "status": None, "body": body}
        self.requests.append(entry)
        self.by_path[path] = self.by_path.get(path, 0) + 1
        return entry

    def answer(self, behaviour: str, messages: list[dict]) -> tuple[str | None, list[dict]]:
        """(text, tool_calls) for a behaviour."""
        prompt = last_user_text(messages)
        answers = self.config["answers"]
        if behaviour == "answers":
            return answers.get(prompt, "UNKNOWN"), []
        m = re.fullmatch(r"(wrong|noisy)-(\d+(?:\.\d+)?)", behaviour)
        if m:
            p = float(m.group(2))
            wrong = (_pct_hash(prompt) < p) if m.group(1) == "wrong" else (self.rng.random() * 100 < p)
            return (self.config["wrong_answer"] if wrong else answers.get(prompt, "UNKNOWN")), []
        if behaviour.startswith("const:"):
            return behaviour[len("const:"):], []
        if behaviour.startswith("tool:"):
            name = behaviour[len("tool:"):]
            call_id = "call_" + hashlib.sha256(prompt.encode()).hexdigest()[:12]
            return None, [{"id": call_id, "type": "function",
                           "function": {"name": name, "arguments": json.dumps({"query": prompt})}}]
        if behaviour == "json":
            return json.dumps({"answer": prompt, "words": count_words(prompt)}), []
        return prompt, []


# ---------------------------------------------------------------- aiohttp app (server process only)

def make_app():
    from aiohttp import web

    state = Behaviour()

    def opts_for(model: str) -> tuple[str, dict[str, str]]:
        name = (model or "").split("/", 1)[-1]
        behaviour, opts = parse_model(state.config.get("aliases", {}).get(name, model or ""))
        merged = {k: str(v) for k, v in state.config["options"].items()}
        merged.update(opts)
        return behaviour, merged

    def judge_text(messages: list[dict], opts: dict[str, str], structured: bool = False) -> str:
        first = next((content_text(m.get("content")) for m in messages if m.get("role") == "user"), "")
        key = ("judge-malformed", first)
        n = state.counters.get(key, 0)
        state.counters[key] = n + 1
        if opts.get("placeholder") and n < int(opts["placeholder"]):
            return json.dumps({"reason": "<one or two sentences>", "score": 0})
        if opts.get("malformed") and n < int(opts["malformed"]) and not structured:
            return "Sure! I think the answer is quite good overall."
        text = json.dumps(judge_reply(first, opts))
        return f"```json\n{text}\n```" if "fenced" in opts else text

    async def delay(opts: dict[str, str]) -> None:
        ms = float(opts.get("latency") or 0) + float(opts.get("hang") or 0)
        if opts.get("jitter"):
            ms += random.uniform(0, float(opts["jitter"]))
        if ms > 0:
            await asyncio.sleep(ms / 1000)

    def echoed_key(key: str) -> str:
        """The caller's API key as a careless provider echoes it (config ``echo_key``)."""
        mode = state.config.get("echo_key")
        if mode == "exact":
            return key
        if mode == "prefix":
            return key[:20] + "..."
        if mode in ("one", "two"):  # a character or two replaced
            chars = list(key)
            for i in ((len(key) // 2,) if mode == "one" else (len(key) // 3, 2 * len(key) // 3)):
                chars[i] = "X" if chars[i] != "X" else "Y"
            return "".join(chars)
        return ""

    def error_response(entry: dict, status: int, message: str, headers=None, key: str = ""):
        entry["status"] = status
        message = state.config.get("error_message") or message  # a hostile provider's text
        if state.config.get("echo_key"):
            message += f" (you sent key {echoed_key(key)})"
        etype = {401: "authentication_error", 429: "rate_limit_error", 404: "not_found_error",
                 400: "invalid_request_error"}.get(status, "server_error")
        return web.json_response({"error": {"message": message, "type": etype, "code": status}},
                                 status=status, headers=headers)

    def failure(entry: dict, model: str, prompt: str, opts: dict[str, str], key: str = ""):
        """An error response when the options ask for one for this request, else None."""
        if opts.get("status"):
            return error_response(entry, int(opts["status"]), f"fake status {opts['status']}", key=key)
        if "auth" in opts:
            return error_response(entry, 401, "Incorrect API key provided", key=key)
        key = (model, prompt)
        n = state.counters.get(key, 0)
        state.counters[key] = n + 1
        if opts.get("fail") and n < int(opts["fail"]):
            return error_response(entry, 500, f"fake internal error {n + 1}")
        if opts.get("r429") and n < int(opts["r429"]):
            return error_response(entry, 429, "Rate limit reached",
                                  headers={"Retry-After": opts.get("retry_after", "1")})
        return None

    async def read_json(request):
        raw = await request.read()
        try:
            return raw, json.loads(raw or b"{}")
        except json.JSONDecodeError:
            return raw, None

    async def begin(request, path: str):
        """(entry, body, model, behaviour, options) of a recorded request, or a 400 response."""
        raw, body = await read_json(request)
        if not isinstance(body, dict):
            return web.json_response({"error": {"message": "bad json"}}, status=400)
        model = body.get("model", "")
        return (state.record(path, body, raw), body, model, *opts_for(model))

    async def random_fault(request, entry: dict, opts: dict[str, str]):
        """A response for a random fault (p500 / p429 / phang / pdrop options), or None."""
        roll = state.rng.random() * 100
        for name in ("p500", "p429", "phang", "pdrop"):
            p = float(opts.get(name) or 0)
            if roll < p:
                break
            roll -= p
        else:
            return None
        if name == "p500":
            return error_response(entry, 500, "random fault: internal error")
        if name == "p429":
            return error_response(entry, 429, "random fault: rate limited",
                                  headers={"Retry-After": opts.get("retry_after", "1")})
        entry["status"] = name[1:]  # "hang" / "drop"
        if name == "phang":
            await asyncio.sleep(float(opts.get("hang_ms") or 5000) / 1000)
            return error_response(entry, 504, "random fault: answered after hanging")
        if request is None:  # a batch line has no connection to drop
            return error_response(entry, 500, "random fault: dropped")
        request.transport.close()  # dropped: the client sees the connection go away
        return web.Response(status=500)

    async def chat(request):
        started = await begin(request, "/v1/chat/completions")
        if not isinstance(started, tuple):
            return started
        return await chat_reply(request, *started)

    async def chat_reply(request, entry, body, model, behaviour, opts):
        """The answer to one chat request (``request`` is None for a line of a batch)."""
        messages = body.get("messages") or []
        prompt = last_user_text(messages)
        fault = await random_fault(request, entry, opts)
        if fault is not None:
            return fault
        key = "" if request is None else request.headers.get("Authorization", "").removeprefix("Bearer ")
        err = failure(entry, model, prompt, opts, key)
        if err is not None:
            return err
        if "bad_json" in opts:
            entry["status"] = 200
            if body.get("stream"):
                resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
                await resp.prepare(request)
                await resp.write(b'data: {"id": "x", "choices": [{"delta": \n\ndata: [DONE]\n\n')
                await resp.write_eof()
                return resp
            return web.Response(status=200, body=b'{"id": "x", "choices": [{"message": ',
                                content_type="application/json")
        if "no_schema" in opts and body.get("response_format"):
            return error_response(entry, 400, "response_format is not supported by this model")
        if "json_object_only" in opts and (body.get("response_format") or {}).get("type") == "json_schema":
            return error_response(entry, 500, "1 validation error: {'loc': ('body', 'response_format', 'type'), "
                                              "'msg': \"Input should be 'text' or 'json_object'\"}")
        if behaviour == "judge":
            text, tool_calls = judge_text(messages, opts, bool(body.get("response_format"))), []
        else:
            text, tool_calls = state.answer(behaviour, messages)
        finish = "tool_calls" if tool_calls else "stop"
        limit = body.get("max_tokens") or body.get("max_completion_tokens")
        if text and isinstance(limit, int) and count_words(text) > limit:
            text, finish = " ".join(text.split()[:limit]), "length"  # cut off, as a real model is
        in_tok = sum(count_words(content_text(m.get("content"))) for m in messages)
        out_tok = count_words(text or "") + sum(count_words(t["function"]["arguments"]) for t in tool_calls)
        usage = {"prompt_tokens": in_tok, "completion_tokens": out_tok, "total_tokens": in_tok + out_tok}
        if "cached" in opts:  # cached=0: the details a real OpenAI response always has
            usage["prompt_tokens_details"] = {"cached_tokens": min(int(opts["cached"]), in_tok)}
        rid = "chatcmpl-" + entry["sha256"][:16]
        created = int(time.time())
        entry["status"] = 200
        if not body.get("stream"):
            await delay(opts)
            msg: dict[str, Any] = {"role": "assistant", "content": text}
            if tool_calls:
                msg["tool_calls"] = tool_calls
            return web.json_response({
                "id": rid, "object": "chat.completion", "created": created, "model": model,
                "choices": [{"index": 0, "message": msg, "finish_reason": finish}],
                **({} if "no_usage" in opts else {"usage": usage})})
        return await stream(request, body, opts, rid, created, model, text, tool_calls, finish, usage)

    async def stream(request, body, opts, rid, created, model, text, tool_calls, finish, usage):
        await delay(opts)
        if opts.get("ttft"):
            await asyncio.sleep(float(opts["ttft"]) / 1000)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)

        async def send(delta: dict | None, finish_reason=None, extra=None):
            chunk = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model,
                     "choices": [] if delta is None else
                     [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}
            if extra:
                chunk.update(extra)
            await resp.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")

        chunk_delay = float(opts.get("chunk_delay") or 0) / 1000
        await send({"role": "assistant", "content": ""})
        if tool_calls:
            await send({"tool_calls": [dict(tc, index=i) for i, tc in enumerate(tool_calls)]})
        else:
            words = (text or "").split(" ")
            for i, w in enumerate(words):
                if chunk_delay:
                    await asyncio.sleep(chunk_delay)
                await send({"content": w if i == 0 else " " + w})
        await send({}, finish_reason=finish)
        if (body.get("stream_options") or {}).get("include_usage") and "no_usage" not in opts:
            await send(None, extra={"usage": usage})
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    async def embeddings(request):
        started = await begin(request, "/v1/embeddings")
        if not isinstance(started, tuple):
            return started
        entry, body, model, _, opts = started
        inputs = body.get("input")
        texts = [inputs] if isinstance(inputs, str) else list(inputs or [])
        err = failure(entry, model, "\n".join(map(str, texts)), opts)
        if err is not None:
            return err
        await delay(opts)
        entry["status"] = 200
        tokens = sum(count_words(str(t)) for t in texts)
        return web.json_response({
            "object": "list", "model": model,
            "data": [{"object": "embedding", "index": i, "embedding": embed_text(str(t))}
                     for i, t in enumerate(texts)],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    # ---- Files + Batches (OpenAI Batch API), scripted by the ``batch`` config (see docstring)

    def new_id(prefix: str, table: dict) -> str:
        return f"{prefix}-{len(table) + 1:06d}"

    def store_file(data: bytes, filename: str, purpose: str) -> dict:
        fid = new_id("file", state.files)
        meta = {"id": fid, "object": "file", "bytes": len(data), "created_at": int(time.time()),
                "filename": filename, "purpose": purpose, "status": "processed"}
        state.files[fid] = {"meta": meta, "data": data}
        return meta

    async def upload_file(request):
        form = await request.post()
        upload, purpose = form.get("file"), form.get("purpose")
        state.record("/v1/files", {"purpose": purpose}, b"")
        if upload is None or not hasattr(upload, "file") or purpose is None:
            return web.json_response({"error": {"message": "file and purpose are required"}}, status=400)
        return web.json_response(store_file(upload.file.read(), upload.filename or "upload", str(purpose)))

    def find_file(request):
        found = state.files.get(request.match_info["file_id"])
        if found is None:
            return None, web.json_response({"error": {"message": "no such file",
                                                      "type": "invalid_request_error"}}, status=404)
        return found, None

    async def file_meta(request):
        found, missing = find_file(request)
        return missing or web.json_response(found["meta"])

    async def file_content(request):
        state.record("/v1/files/content", {"file_id": request.match_info["file_id"]}, b"")
        found, missing = find_file(request)
        return missing or web.Response(body=found["data"], content_type="application/octet-stream")

    def input_problem(lines: list, endpoint: str) -> str | None:
        """What OpenAI's validation would refuse in an input file (None when it is valid)."""
        seen, models = set(), set()
        for i, line in enumerate(lines, 1):
            if not isinstance(line, dict) or not isinstance(line.get("body"), dict):
                return f"line {i}: not a request object"
            if line.get("method") != "POST" or line.get("url") != endpoint:
                return f"line {i}: method/url must be POST {endpoint}"
            cid = line.get("custom_id")
            if not isinstance(cid, str) or not cid or cid in seen:
                return f"line {i}: custom_id missing or duplicated"
            seen.add(cid)
            models.add(line["body"].get("model"))
        if len(models) > 1:
            return "all requests of a batch must use the same model"
        return None if lines else "the input file is empty"

    async def run_lines(bid: str, lines: list) -> tuple[list, list]:
        """Answer every line as the live endpoint would: (output lines, error lines)."""
        out, err = [], []
        for i, line in enumerate(lines):
            body = dict(line["body"])
            body.pop("stream", None)
            body.pop("stream_options", None)
            model = body.get("model", "")
            entry = state.record("batch:" + line["url"], body, json.dumps(body).encode())
            resp = await chat_reply(None, entry, body, model, *opts_for(model))
            record = {"id": f"batch_req_{bid}_{i}", "custom_id": line["custom_id"],
                      "response": {"status_code": resp.status, "request_id": f"req_{bid}_{i}",
                                   "body": json.loads(resp.body)}, "error": None}
            (out if resp.status == 200 else err).append(record)
        return out, err

    async def create_batch(request):
        raw, body = await read_json(request)
        if not isinstance(body, dict):
            return web.json_response({"error": {"message": "bad json"}}, status=400)
        state.record("/v1/batches", body, raw)
        found = state.files.get(body.get("input_file_id"))
        if found is None:
            return web.json_response({"error": {"message": "input file not found"}}, status=400)
        bid = new_id("batch", state.batches)
        now = int(time.time())
        obj = {"id": bid, "object": "batch", "endpoint": body.get("endpoint"), "errors": None,
               "input_file_id": body["input_file_id"], "completion_window": body.get("completion_window"),
               "status": "validating", "output_file_id": None, "error_file_id": None,
               "created_at": now, "in_progress_at": None, "expires_at": now + 86400,
               "finalizing_at": None, "completed_at": None, "failed_at": None, "expired_at": None,
               "cancelling_at": None, "cancelled_at": None,
               "request_counts": {"total": 0, "completed": 0, "failed": 0},
               "metadata": body.get("metadata")}
        try:
            lines = [json.loads(x) for x in found["data"].decode().splitlines() if x.strip()]
        except ValueError:
            lines = [None]
        problem = input_problem(lines, body.get("endpoint"))
        out, err = ([], []) if problem else await run_lines(bid, lines)
        state.batches[bid] = {"obj": obj, "polls": 0, "lines": lines, "out": out, "err": err,
                              "problem": problem}
        obj["request_counts"]["total"] = len(lines) if not problem else 0
        return web.json_response(obj)

    def finish(b: dict, end: str) -> None:
        """Move a batch to its scripted terminal status, writing its output and error files."""
        obj, now = b["obj"], int(time.time())
        script = state.config.get("batch") or {}
        if b["problem"] is not None or end == "failed":
            obj.update(status="failed", failed_at=now, errors={"object": "list", "data": [
                {"code": "invalid_request", "message": b["problem"] or "fake batch failure", "line": 1}]})
            return
        out, err = list(b["out"]), list(b["err"])
        if end in ("expired", "cancelled"):
            done = int(script.get("done", len(out) // 2))
            code = "batch_expired" if end == "expired" else "batch_cancelled"
            err += [{"id": r["id"], "custom_id": r["custom_id"], "response": None,
                     "error": {"code": code, "message": f"This request could not be executed before "
                               f"the batch was {end}."}} for r in out[done:]]
            out = out[:done]
        if out:
            obj["output_file_id"] = store_file(
                "".join(json.dumps(r) + "\n" for r in out).encode(), f"{obj['id']}_output.jsonl",
                "batch_output")["id"]
        if err:
            obj["error_file_id"] = store_file(
                "".join(json.dumps(r) + "\n" for r in err).encode(), f"{obj['id']}_error.jsonl",
                "batch_output")["id"]
        obj["request_counts"].update(completed=len(out), failed=len(err))
        obj["status"] = end
        obj[f"{end}_at" if end != "completed" else "completed_at"] = now

    async def retrieve_batch(request):
        bid = request.match_info["batch_id"]
        state.record("/v1/batches/retrieve", {"batch_id": bid}, b"")
        b = state.batches.get(bid)
        if b is None:
            return web.json_response({"error": {"message": "no such batch"}}, status=404)
        obj = b["obj"]
        script = state.config.get("batch") or {}
        if obj["status"] in ("validating", "in_progress", "finalizing") and not script.get("hold"):
            b["polls"] += 1
            polls = int(script.get("polls", 1))
            if b["problem"] is not None:
                finish(b, "failed")
            elif b["polls"] == 1:
                obj.update(status="in_progress", in_progress_at=int(time.time()))
            elif b["polls"] <= polls:
                pass  # still in progress
            elif obj["status"] == "in_progress":
                obj.update(status="finalizing", finalizing_at=int(time.time()))
            else:
                finish(b, script.get("end", "completed"))
        return web.json_response(obj)

    async def stats(request):
        out: dict[str, Any] = {"count": len(state.requests), "by_path": dict(state.by_path)}
        if request.query.get("summary") != "1":
            keep_body = request.query.get("bodies") != "0"
            out["requests"] = [e if keep_body else {k: v for k, v in e.items() if k != "body"}
                               for e in state.requests]
        return web.json_response(out)

    async def reset(request):
        state.reset()
        return web.json_response({"ok": True})

    async def config(request):
        _, body = await read_json(request)
        if not isinstance(body, dict):
            return web.json_response({"error": {"message": "config must be a JSON object"}}, status=400)
        state.configure(body)
        return web.json_response({"ok": True})

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/chat/completions", chat)
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_post("/embeddings", embeddings)
    app.router.add_post("/v1/files", upload_file)
    app.router.add_get("/v1/files/{file_id}", file_meta)
    app.router.add_get("/v1/files/{file_id}/content", file_content)
    app.router.add_post("/v1/batches", create_batch)
    app.router.add_get("/v1/batches/{batch_id}", retrieve_batch)
    app.router.add_get("/_stats", stats)
    app.router.add_post("/_reset", reset)
    app.router.add_post("/_config", config)
    return app


def serve(host: str, port: int) -> None:
    from aiohttp import web

    async def main() -> None:
        runner = web.AppRunner(make_app(), access_log=None, handle_signals=True)
        await runner.setup()
        site = web.TCPSite(runner, host, port, backlog=4096, reuse_address=True)
        await site.start()
        bound = site._server.sockets[0].getsockname()[1]  # port 0 -> the one the OS chose
        print(f"PORT {bound}", flush=True)
        await asyncio.Event().wait()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass


# ---------------------------------------------------------------- client-side handle

class FakeServer:
    """Starts the server in a subprocess and talks to its control endpoints (stdlib only)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.host, self.port = host, port
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_base(self) -> str:
        return self.url + "/v1"

    def start(self, timeout: float = 20.0) -> "FakeServer":
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--host", self.host, "--port", str(self.port)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
        deadline = time.monotonic() + timeout
        line = self.proc.stdout.readline()  # blocks until ready or the process exits
        if not line.startswith("PORT ") or time.monotonic() > deadline:
            self.stop()
            raise RuntimeError(f"fake server did not start: {line!r}")
        self.port = int(line.split()[1])
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            if self.proc.stdout:
                self.proc.stdout.close()
            self.proc = None

    def __enter__(self) -> "FakeServer":
        return self.start() if self.proc is None else self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _call(self, method: str, path: str, payload: Any = None) -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())

    def stats(self, bodies: bool = True, summary: bool = False) -> dict:
        q = "?summary=1" if summary else ("" if bodies else "?bodies=0")
        return self._call("GET", "/_stats" + q)

    def reset(self) -> None:
        self._call("POST", "/_reset", {})

    def configure(self, **cfg: Any) -> None:
        """e.g. configure(answers={"2+2?": "4"}, options={"latency": 5}, seed=1)."""
        self._call("POST", "/_config", cfg)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="local OpenAI-compatible fake LLM server")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    serve(args.host, args.port)
