"""Batch mode: a variant's calls sent through the provider's batch API (OpenAI Batch: Files +
Batches) instead of one HTTP call each, at about half the price, answered within 24 h.

Runs before the engine (``pipeline.replay_variants``): the requests are exactly the live path's
(``ModelVariant.request``), keyed by ``cache.request_key``, and the key is the line's
``custom_id``, so every result maps back to its case. Requests already in the cache are never
put in a batch. The answers are written to the response cache; the engine then turns them into
samples with provenance ``batch`` (no latency, no TTFT: a batch answer's time is the provider's
queue, not the model's speed).

Every submitted batch is recorded in a JSON state file beside the cache
(``<cache>.batches.json``, written atomically) the moment the provider accepts it, so a run
interrupted while polling (Ctrl-C, kill -9, a CI timeout) resumes polling the same batch on
rerun instead of paying for it twice. A batch is dropped from the state only after its answers
are committed to the cache.

Outcomes of a finished batch, per request: answered (cached); a failed line (the error file) or a
request a ``failed`` / ``expired`` / ``cancelled`` batch never ran is an error sample of this run,
counted like a provider error and not cached, so a rerun submits it again.

Supported: litellm's ``openai`` provider (OpenAI, and any OpenAI-compatible server given as
``api_base`` that implements ``/v1/files`` and ``/v1/batches``), through litellm's
``acreate_file`` / ``acreate_batch`` / ``aretrieve_batch`` / ``afile_content``, which take
``api_base`` and ``api_key`` for that provider. Other providers are refused with a config error.
"""
from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from ..errors import ConfigError, InputError
from ..model import Case
from .llm import LLMError

ENDPOINT = "/v1/chat/completions"
OPEN = ("validating", "in_progress", "finalizing", "cancelling")
TERMINAL = ("completed", "failed", "expired", "cancelled")
MAX_REQUESTS = 50_000  # OpenAI's limit of requests in one batch file
SUPPORTED_PROVIDERS = ("openai",)
STATE_VERSION = 1
# polls in a row the provider could not be reached before the run stops (rerun resumes polling)
MAX_POLL_FAILURES = 5


@dataclass
class BatchSettings:
    poll_interval_s: float = 30.0  # first wait between polls; grows x1.5 up to poll_max_s
    poll_max_s: float = 300.0
    max_wait_s: float = 26 * 3600.0  # the provider's 24 h window and some slack
    completion_window: str = "24h"


def batch_settings(value: Any) -> BatchSettings | None:
    """A variant's ``batch:`` value (true, or a mapping of the settings) as BatchSettings; None
    when batch mode is off."""
    if not value:
        return None
    s = BatchSettings()
    if isinstance(value, dict):
        for k in ("poll_interval_s", "poll_max_s", "max_wait_s"):
            if value.get(k) is not None:
                setattr(s, k, float(value[k]))
        s.poll_max_s = max(s.poll_max_s, s.poll_interval_s)
    return s


def provider_of(model: str) -> str | None:
    from .llm import litellm_module

    try:
        return litellm_module().get_llm_provider(model)[1]
    except Exception:  # an unknown provider
        return None


def check_variant(name: str, spec: dict) -> None:
    """Refuse batch mode where it cannot work: a variant that calls no model, or a provider
    whose batch API replaygate does not drive (ConfigError naming the field: exit 2)."""
    fld = f"variants.{name}.batch"
    if not spec.get("model"):
        kind = next((k for k in ("recorded", "run", "callable") if spec.get(k)), "no model")
        raise ConfigError(f"batch mode needs a variant that calls a model; {name!r} is a {kind} "
                          "variant: remove batch (or --batch)", field=fld)
    provider = provider_of(spec["model"])
    if provider not in SUPPORTED_PROVIDERS:
        raise ConfigError(
            f"batch mode supports OpenAI and OpenAI-compatible endpoints (model openai/..., with "
            f"api_base for a compatible server); {spec['model']!r} is provider {provider or 'unknown'}, "
            "whose batch API (Anthropic Message Batches, Vertex, Bedrock) is not supported: remove "
            "batch (or --batch) for this variant", field=fld)


def line_body(request: dict) -> dict:
    """The JSON body the live path sends for ``request`` (llm.chat through litellm's openai
    provider): the model name without litellm's prefix, messages, tools, the params. Batch
    answers are never streamed."""
    from .llm import litellm_module

    model = litellm_module().get_llm_provider(request["model"])[0]
    body: dict[str, Any] = {k: v for k, v in (request.get("params") or {}).items()
                            if v is not None and k not in ("model", "stream", "stream_options")}
    body["model"] = model
    body["messages"] = request["messages"]
    if request.get("tools"):
        body["tools"] = request["tools"]
    return body


def request_file(requests: dict[str, dict]) -> bytes:
    """The OpenAI Batch input file (JSONL) for ``{cache key: request}``: the key is the
    ``custom_id``."""
    out = []
    for key, req in requests.items():
        out.append(json.dumps({"custom_id": key, "method": "POST", "url": ENDPOINT,
                               "body": line_body(req)}, ensure_ascii=False))
    return ("\n".join(out) + "\n").encode("utf-8")


# ---------------------------------------------------------------- state beside the cache

def state_path(cache_path: str | os.PathLike) -> str:
    return os.fspath(cache_path) + ".batches.json"


class BatchState:
    """The batches submitted and not yet collected: ``entries`` of {batch_id, input_file_id,
    variant, model, api_base, api_key_env, keys, submitted_at, status}."""

    def __init__(self, path: str):
        self.path = path
        self.entries: list[dict] = []
        if os.path.exists(path):
            try:
                with open(path, encoding="utf-8") as f:
                    data = json.load(f)
                entries = data["batches"]
                if not isinstance(entries, list) or not all(
                        isinstance(e, dict) and isinstance(e.get("batch_id"), str)
                        and isinstance(e.get("keys"), list) for e in entries):
                    raise ValueError("batches is not a list of batch records")
            except (OSError, ValueError, KeyError, TypeError) as e:
                raise InputError(f"not a readable batch state file ({type(e).__name__}: {e}); it lists "
                                 "the batches submitted and not yet collected: fix it, or delete it (the "
                                 "next run submits those requests again, paying twice)", file=path) from None
            self.entries = entries

    def save(self) -> None:
        from ..fileio import write_atomic

        write_atomic(self.path, json.dumps({"version": STATE_VERSION, "batches": self.entries},
                                           indent=1, sort_keys=True), what="the batch state file")


# ---------------------------------------------------------------- talking to the provider

@dataclass
class Endpoint:
    """Where a variant's batches go and how to authenticate (the key read from the env here,
    never stored)."""
    model: str
    api_base: str | None
    api_key_env: str | None

    def kwargs(self) -> dict:
        from .llm import _api_key

        kw: dict[str, Any] = {"custom_llm_provider": "openai"}
        key = _api_key(self.api_key_env)
        if self.api_base:
            kw["api_base"] = self.api_base
        if key:
            kw["api_key"] = key
        elif self.api_base:
            kw["api_key"] = "sk-none"  # a local compatible server needs none; the client wants one
        return kw

    def secret(self) -> str | None:
        return os.environ.get(self.api_key_env) if self.api_key_env else None


def _field(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


async def _retrying(what, make, tries: int, backoff_s: float, secret: str | None, cap_s: float = 30.0):
    """``await make()`` with retries of retryable failures (classified as the live path does);
    no wait is longer than ``cap_s`` (``max_retry_wait``): a longer Retry-After is the error."""
    from .llm import LLMError, classify

    attempt = 0
    while True:
        try:
            return await make()
        except Exception as exc:  # noqa: BLE001  classified, never raw
            err = exc if isinstance(exc, LLMError) else classify(exc, secret)
            too_long = err.retry_after is not None and err.retry_after > cap_s
            if not err.retryable or attempt >= tries or too_long:
                beyond = (f"Retry-After {err.retry_after:g} s is beyond the {cap_s:g} s cap on waits "
                          "(max_retry_wait): ") if too_long else ""
                err.message = f"{what}: {beyond}{err.message}"
                raise err from None
            await asyncio.sleep(err.retry_after if err.retry_after is not None
                                else min(cap_s, backoff_s * (2 ** attempt)))
            attempt += 1


# ---------------------------------------------------------------- the batch phase

@dataclass
class BatchResult:
    """What the batch phase gives the engine: ``{cache key: {"response": resp}}`` for answers
    collected in this run (already cached) or ``{"error": {"type", "message"}}`` (keys are whole
    requests, so two variants sending the same request share one line and one answer);
    ``pending``: why the batch phase could not finish (the run is then incomplete, exit 3)."""
    outcomes: dict[str, dict] = field(default_factory=dict)
    pending: str | None = None
    submitted: int = 0  # batches created in this run
    resumed: int = 0  # batches of an earlier run polled


def _wanted(cases: list[Case], spec: dict, name: str, repeats: int) -> dict[str, dict]:
    """{cache key: request} of every call the live path would make for this variant (a case the
    variant cannot replay is left to the engine, which reports it)."""
    from .cache import UnsendableText, request_key
    from .variants import UnreplayableCase, build_variant

    v = build_variant({**spec, "name": name})
    out: dict[str, dict] = {}
    for case in cases:
        for r in range(repeats):
            try:
                req = v.request(case)
                out.setdefault(request_key(req, r, sendable=True), req)
            except (UnreplayableCase, UnsendableText):
                continue
    return out


class _Phase:
    def __init__(self, cases, specs: dict[str, dict], opts, say):
        self.cases, self.specs, self.opts = cases, specs, opts
        self.say = say or (lambda text: None)
        from .cache import ResponseCache

        self.cache = ResponseCache(opts.cache_path)
        self.state = BatchState(state_path(opts.cache_path))
        self.result = BatchResult()

    def close(self) -> None:
        self.cache.close()

    async def submit(self, name: str, ep: Endpoint, requests: dict[str, dict], settings: BatchSettings) -> None:
        lt = _litellm()
        tries, backoff = int(self.opts.max_retries), float(self.opts.backoff_s)
        keys = list(requests)
        for start in range(0, len(keys), MAX_REQUESTS):
            chunk = keys[start:start + MAX_REQUESTS]
            data = request_file({k: requests[k] for k in chunk})
            try:
                kw = ep.kwargs()  # a missing key's variable: MissingCredentials, below
                uploaded = await _retrying(
                    "uploading the batch input file",
                    lambda: lt.acreate_file(file=(f"replaygate-{name}.jsonl", data), purpose="batch", **kw),
                    tries, backoff, ep.secret(), self.opts.backoff_max_s)
                created = await _retrying(
                    "creating the batch",
                    lambda: lt.acreate_batch(completion_window=settings.completion_window, endpoint=ENDPOINT,
                                             input_file_id=uploaded.id,
                                             metadata={"replaygate_variant": name[:500]}, **kw),
                    tries, backoff, ep.secret(), self.opts.backoff_max_s)
            except LLMError as err:  # these requests fail in this run; a rerun submits them again
                self._fail(chunk, err.type, f"submitting the batch failed: {err.message}")
                if err.auth:
                    from .llm import credentials_hint

                    self.result.pending = self.result.pending or (
                        f"authentication failed submitting the batch of variant {name!r} ({ep.model}): "
                        f"{credentials_hint(ep.model, ep.api_key_env, ep.api_base)} [{err}]")
                continue
            # recorded before anything else: from here on a rerun polls this batch, never resubmits
            self.state.entries.append({
                "batch_id": created.id, "input_file_id": uploaded.id, "variant": name, "model": ep.model,
                "api_base": ep.api_base, "api_key_env": ep.api_key_env, "keys": chunk,
                "submitted_at": time.time(), "status": _field(created, "status") or "validating"})
            self.state.save()
            self.result.submitted += 1
            self.say(f"batch {created.id}: {len(chunk)} request(s) of variant {name!r} submitted "
                     f"(state in {self.state.path})")

    def _fail(self, keys, etype: str, message: str) -> None:
        for k in keys:
            self.result.outcomes.setdefault(k, {"error": {"type": etype, "message": message[:1000]}})

    async def poll(self, entries: list[tuple[str, dict]], settings: BatchSettings) -> None:
        """Poll ``entries`` ((variant, state entry)) until every one is finished and collected,
        the wait exceeds ``max_wait_s``, or the provider stays unreachable."""
        lt = _litellm()
        from .llm import LLMError, classify

        interval = settings.poll_interval_s
        began = time.monotonic()
        failures = 0
        waiting = list(entries)
        while waiting:
            still = []
            for name, entry in waiting:
                ep = Endpoint(entry["model"], entry.get("api_base"), entry.get("api_key_env"))
                try:
                    batch = await lt.aretrieve_batch(batch_id=entry["batch_id"], **ep.kwargs())
                except Exception as exc:  # noqa: BLE001
                    err = exc if isinstance(exc, LLMError) else classify(exc, ep.secret())
                    if err.retryable:
                        failures += 1
                        if failures >= MAX_POLL_FAILURES:
                            self.result.pending = (f"cannot reach the provider to poll batch {entry['batch_id']} "
                                                   f"({err}); rerun to resume polling it")
                            return
                        still.append((name, entry))
                        continue
                    self.result.pending = (f"polling batch {entry['batch_id']} failed ({err}); it stays in "
                                           f"{self.state.path}: rerun to resume, or delete that entry "
                                           "to submit its requests again")
                    return
                failures = 0
                status = str(_field(batch, "status") or "")
                if status != entry.get("status"):
                    entry["status"] = status
                    self.state.save()
                if status in TERMINAL:
                    try:
                        await self.collect(name, entry, batch, ep)
                    except LLMError as err:  # the batch stays in the state: a rerun collects it
                        self.result.pending = (f"cannot read the results of batch {entry['batch_id']} "
                                               f"({err}); rerun to collect them")
                        return
                else:
                    still.append((name, entry))
            waiting = still
            if not waiting:
                return
            if time.monotonic() - began > settings.max_wait_s:
                ids = ", ".join(e["batch_id"] for _, e in waiting)
                self.result.pending = (f"batch(es) {ids} not finished after {settings.max_wait_s:g} s "
                                       "(batch max_wait_s); rerun to resume polling")
                return
            await asyncio.sleep(interval)
            interval = min(settings.poll_max_s, interval * 1.5)

    async def collect(self, name: str, entry: dict, batch: Any, ep: Endpoint) -> None:
        """Read a finished batch's output and error files: answers into the cache, failures into
        this run's errors; then drop the batch from the state."""
        lt = _litellm()
        kw = ep.kwargs()
        status = entry["status"]
        keys = set(entry["keys"])
        per = self.result.outcomes
        answered: dict[str, dict] = {}
        failed: dict[str, dict] = {}
        for fid_name in ("output_file_id", "error_file_id"):
            fid = _field(batch, fid_name)
            if not fid:
                continue
            content = await _retrying(f"reading the {fid_name[:-8]} file of batch {entry['batch_id']}",
                                      lambda: lt.afile_content(file_id=fid, **kw),
                                      int(self.opts.max_retries), float(self.opts.backoff_s), ep.secret(),
                                      float(self.opts.backoff_max_s))
            for key, outcome in parse_lines(_bytes(content), status):
                if key not in keys:
                    continue  # not one of ours (a shared file): ignored
                (answered if "response" in outcome else failed)[key] = outcome
        for key, outcome in answered.items():
            self.cache.put(key, outcome["response"])
        self.cache.flush()  # committed before the batch leaves the state: never lost, never paid twice
        per.update(answered)
        reason = _batch_error(batch, status)
        for key in keys - set(answered):
            per[key] = failed.get(key) or {"error": reason}
        self.state.entries = [e for e in self.state.entries if e["batch_id"] != entry["batch_id"]]
        self.state.save()
        self.say(f"batch {entry['batch_id']} {status}: {len(answered)} answered, "
                 f"{len(keys) - len(answered)} failed")


def _bytes(content: Any) -> bytes:
    for attr in ("content", "text"):
        value = getattr(content, attr, None)
        if isinstance(value, bytes):
            return value
        if isinstance(value, str):
            return value.encode("utf-8")
    return content if isinstance(content, bytes) else str(content).encode("utf-8")


def _batch_error(batch: Any, status: str) -> dict:
    """The error of a request a finished batch did not answer (and no error line names)."""
    if status == "failed":
        errs = _field(_field(batch, "errors"), "data") or []
        text = "; ".join(str(_field(e, "message") or _field(e, "code")) for e in errs[:3]) or "no reason given"
        return {"type": "BatchFailed", "message": f"the batch failed: {text}"}
    if status == "expired":
        return {"type": "BatchExpired", "message": "the batch expired before this request ran "
                                                   "(submitted again on rerun)"}
    if status == "cancelled":
        return {"type": "BatchCancelled", "message": "the batch was cancelled before this request ran"}
    return {"type": "BatchMissing", "message": f"the {status} batch returned no line for this request"}


_STATUS_NAMES = {400: "BadRequestError", 401: "AuthenticationError", 403: "PermissionDeniedError",
                 404: "NotFoundError", 429: "RateLimitError", 500: "InternalServerError",
                 502: "BadGatewayError", 503: "ServiceUnavailableError"}
_CODE_NAMES = {"batch_expired": "BatchExpired", "batch_cancelled": "BatchCancelled"}


def parse_lines(data: bytes, status: str = "completed"):
    """(custom_id, outcome) for each line of a batch output or error file: ``{"response":
    normalised response}`` for an answer (the live path's shape, no latency), else ``{"error":
    {"type", "message"}}``."""
    from .llm import _from_response

    for raw in data.decode("utf-8", "replace").splitlines():
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(line, dict) or not isinstance(line.get("custom_id"), str):
            continue
        key = line["custom_id"]
        resp = line.get("response") or {}
        body = resp.get("body") if isinstance(resp, dict) else None
        code = resp.get("status_code") if isinstance(resp, dict) else None
        if code == 200 and isinstance(body, dict) and body.get("choices"):
            out = _from_response(SimpleNamespace(choices=body["choices"], usage=body.get("usage"),
                                                 model=body.get("model")))
            out["latency_ms"] = None
            out["via"] = "batch"  # a later run serving it from the cache prices it at the batch rate
            yield key, {"response": out}
            continue
        err = line.get("error") or (body or {}).get("error") or {}
        message = str(_field(err, "message") or f"HTTP {code}")
        etype = _CODE_NAMES.get(str(_field(err, "code"))) or _STATUS_NAMES.get(code) or \
            (f"HTTP{code}" if code else "BatchRequestError")
        yield key, {"error": {"type": etype, "message": message[:1000]}}


def _litellm():
    from .llm import litellm_module

    return litellm_module()


async def _run_phase(phase: _Phase, names: list[str], settings: dict[str, BatchSettings]) -> None:
    cache_mode = phase.opts.cache_mode
    to_poll: list[tuple[str, dict]] = []
    earlier = {e["batch_id"] for e in phase.state.entries}
    polled: set[str] = set()  # each batch polled once, even when two variants share requests
    poll_settings = None
    for name in names:
        spec = phase.specs[name]
        wanted = _wanted(phase.cases, spec, name, phase.opts.repeats)
        hits = set(phase.cache.get_many(list(wanted))) if cache_mode == "rw" else set()
        pending = set()
        for entry in phase.state.entries:
            mine = wanted.keys() & set(entry["keys"])
            if mine:
                pending |= mine
                if entry["batch_id"] not in polled:
                    polled.add(entry["batch_id"])
                    to_poll.append((name, entry))
        missing = {k: r for k, r in wanted.items() if k not in hits and k not in pending}
        if missing:
            ep = Endpoint(spec["model"], spec.get("api_base"), spec.get("api_key_env"))
            before = len(phase.state.entries)
            await phase.submit(name, ep, missing, settings[name])
            for e in phase.state.entries[before:]:
                polled.add(e["batch_id"])
                to_poll.append((name, e))
        poll_settings = settings[name] if poll_settings is None else poll_settings
    phase.result.resumed = len(polled & earlier)
    if phase.result.resumed:
        phase.say(f"resuming {phase.result.resumed} batch(es) submitted by an earlier run")
    if to_poll:
        await phase.poll(to_poll, poll_settings)


def run_batches(cases: list[Case], specs: dict[str, dict], names: list[str], opts,
                say=None) -> BatchResult:
    """Submit (or resume) the batches of variants ``names`` and wait for them; see the module
    docstring. ``opts`` is the engine's ReplayOptions (cache path and mode, repeats, retries)."""
    settings = {n: batch_settings(specs[n].get("batch")) or BatchSettings() for n in names}
    phase = _Phase(cases, specs, opts, say)
    try:
        asyncio.run(_run_phase(phase, names, settings))
    except KeyboardInterrupt:
        open_ids = ", ".join(e["batch_id"] for e in phase.state.entries) or "none"
        phase.result.pending = (f"interrupted (Ctrl-C) while waiting for batch(es) {open_ids}; they are "
                                f"recorded in {phase.state.path}: rerun to resume polling")
    finally:
        phase.close()
    return phase.result


# ---------------------------------------------------------------- samples and prices

def batch_cost(model: str | None, sample, price: dict | None) -> tuple[float | None, str | None]:
    """(cost in USD, a note or None) of a batch answer. litellm's cost map has batch prices
    (``input_cost_per_token_batches``, about half) for some models: used when present. Otherwise
    the normal price, said so ("batch discount not applied"); a config ``price`` is used as
    given. Unknown stays None, never 0."""
    from .pricing import _cost_map_entry, cost_usd

    args = (sample.input_tokens, sample.output_tokens, sample.cached_tokens)
    if price:
        return cost_usd(model, *args, price=price), (
            "batch answers are priced with the variant's `price` as given: put your batch price "
            "there, the batch discount is not applied on top")
    entry = _cost_map_entry(model) if model else None
    if entry is not None and entry.get("input_cost_per_token_batches") is not None \
            and entry.get("output_cost_per_token_batches") is not None:
        batch_price = {"input": float(entry["input_cost_per_token_batches"]) * 1e6,
                       "output": float(entry["output_cost_per_token_batches"]) * 1e6}
        return cost_usd(model, *args, price=batch_price), None
    cost = cost_usd(model, *args)
    if cost is None:
        return None, None  # the engine's usual "no price known" warning covers it
    return cost, (f"batch discount not applied: litellm's cost map has no batch price for "
                  f"{model!r}, so cost_usd is the normal per-call price")


def batch_sample(outcome: dict | None, hit: tuple | None, repeat: int, model: str | None,
                 price: dict | None):
    """(Sample or None, note) for one request of a batch-mode variant: the batch's answer
    (provenance ``batch``, no latency), its error, an answer cached by an earlier run (``hit``:
    (value, cached_at)), or None when there is no answer yet."""
    from .variants import error_sample, response_sample

    if outcome is not None and "error" in outcome:
        return error_sample(repeat, outcome["error"]["type"], outcome["error"]["message"]), None
    if outcome is not None:
        s = response_sample(outcome["response"], repeat, cached=False)
        s.provenance, s.latency_ms, s.ttft_ms = "batch", None, None
        s.cost_usd, note = batch_cost(model, s, price)
        return s, note
    if hit is not None:
        s = response_sample(hit[0], repeat, cached=True, cached_at=hit[1])
        if hit[0].get("via") == "batch":
            s.cost_usd, note = batch_cost(model, s, price)
            return s, note
        return s, None
    return None, None
