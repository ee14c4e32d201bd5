"""The replay scheduler: variants x cases x repeats -> CaseResults (unscored).

- ``concurrency`` worker coroutines pull calls from one ordered list, so with several variants the
  baseline and candidate calls of a case are sent next to each other (provider drift hits both).
- Optional ``rpm`` / ``tpm`` token buckets; per-call timeout; retries with exponential backoff and
  jitter that honour ``Retry-After``, only for retryable errors; an error budget.
- The response cache is read before and written after every call, so a killed run resumes
  without repeating a paid call.
- One untimed warm-up call per model endpoint before the first timed call, so client start-up
  (imports, TLS) is not in the latency.
- Stops with ``RunIncomplete`` (exit 3) on an auth failure, an exceeded error budget, an offline
  cache miss, a provider that never answered or stopped answering (connection failures), or
  Ctrl-C; the exception carries ``.partial`` (the results so far, in the normal shape,
  unfinished samples as ``NotRun`` errors) and ``.warnings``.
"""
from __future__ import annotations

import asyncio
import os
import random
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ReplaygateError, RunIncomplete
from ..model import Case, CaseResult, Sample
from .pool import AUTO_MIN_CALLS, OTHER_WORKER_STOPPED, auto_workers, run_pool, usable_cores
from .variants import (CallableVariant, ModelVariant, RecordedVariant, RunVariant, UnreplayableCase,
                       build_variant, error_sample, response_sample)

CACHE_MODES = ("rw", "off", "offline", "refresh")
WARMUP_TEXT = "replaygate warm-up"
INTERRUPTED = "interrupted (Ctrl-C) before every call finished"
UNREACHABLE_AFTER = 5  # connection failures with no answer yet that mean "provider unreachable"
# calls in a row that still failed to connect after all their retries, once the endpoint had
# answered, that mean "provider lost" (each of them spent its whole backoff window, a few
# seconds, finding nobody listening: a killed server, not a blip)
LOST_AFTER = 2
PROBE_CALLS = 3  # `workers: auto`: untimed calls after the warm-up that estimate latency and CPU


@dataclass
class ReplayOptions:
    concurrency: int = 16
    repeats: int = 1
    timeout_s: float = 60.0
    max_retries: int = 3
    cache_mode: str = "rw"  # rw | off | offline | refresh
    cache_path: str | Path | None = None
    rpm: float | None = None
    tpm: float | None = None
    max_error_rate: float | None = None  # share of failed calls that stops the run
    min_calls_for_budget: int = 20  # the budget is judged only after this many calls
    progress: bool | None = False  # None: when stderr is a terminal
    seed: int | None = None  # for retry jitter
    warmup: bool = True
    backoff_s: float = 0.5  # first retry delay; doubles per attempt, +-50% jitter
    backoff_max_s: float = 30.0  # config `max_retry_wait`: no wait before a retry is longer
    # processes sharing the model calls: litellm costs milliseconds of CPU a call, so one process
    # caps the rate; "auto" (or None) = chosen from a probe of the endpoint (pool.auto_workers)
    workers: int | str | None = 1
    # variants called live even when the cache has their answer (the answer is still written):
    # `gate` re-measures them so latency compares like with like (see pipeline.live_variants)
    live_variants: frozenset = frozenset()
    # batch mode (batch.py): {variant: {cache key: outcome}} collected by the batch phase before
    # the replay; these variants make no live call. ``batch_pending``: why some have no answer yet
    batch: dict | None = None
    batch_pending: str | None = None


class TokenBucket:
    """``rate`` units per second, bursts up to ``capacity`` (one second's worth by default).
    Waiters are served in order; a request larger than the capacity waits for a full bucket."""

    def __init__(self, rate: float, capacity: float | None = None):
        self.rate = float(rate)
        self.capacity = max(1.0, float(capacity if capacity is not None else rate))
        self.level = self.capacity
        self.stamp = time.monotonic()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    async def take(self, n: float = 1.0) -> None:
        async with self._lock:
            need = min(n, self.capacity)
            while True:
                self._refill()
                if self.level >= need:
                    self.level -= n
                    return
                await asyncio.sleep((need - self.level) / self.rate)

    def adjust(self, delta: float) -> None:
        """Charge (or refund) the difference between the estimate and the real use."""
        self._refill()
        self.level = min(self.capacity, self.level - delta)


def estimate_tokens(request: dict) -> int:
    """Rough request size for the tpm bucket (4 characters a token + the output cap)."""
    chars = 0
    for m in request.get("messages") or []:
        c = m.get("content")
        chars += len(c) if isinstance(c, str) else sum(len(p.get("text", "")) for p in c or [])
    params = request.get("params") or {}
    out = params.get("max_tokens") or params.get("max_completion_tokens") or 0
    return chars // 4 + 1 + int(out)


def _source(case: Case) -> dict:
    src = case.metadata.get("source")
    if isinstance(src, dict):
        return dict(src)
    keys = ("file", "row", "line", "trace_id", "span_id", "span_name", "service")
    return {k: case.metadata[k] for k in keys if k in case.metadata}


class RecentRate:
    """Completions per second over the last ``window`` completions (at most ``span_s`` back),
    for the ETA: the average since the start counts the warm-up and the first, slowest calls (a
    run that took 16 s once showed an ETA of 4247 s), and a mix of instant cache hits and live
    calls changes speed mid-run."""

    def __init__(self, window: int = 200, span_s: float = 30.0):
        self.times: deque[float] = deque(maxlen=window)
        self.span_s = span_s

    def add(self, now: float) -> None:
        self.times.append(now)

    def rate(self, now: float) -> float | None:
        while len(self.times) > 2 and now - self.times[0] > self.span_s:
            self.times.popleft()
        if len(self.times) < 2:
            return None
        # from the oldest completion kept to now: a stall since the last completion slows it
        elapsed = now - self.times[0]
        return (len(self.times) - 1) / elapsed if elapsed > 0 else None

    def eta(self, remaining: int, now: float) -> float | None:
        r = self.rate(now)
        return remaining / r if r else None


class _Progress:
    def __init__(self, total: int, enabled: bool):
        self.total, self.enabled = total, enabled
        self.done = self.errors = self.hits = 0
        self.start = time.monotonic()
        self.recent = RecentRate()
        self._last = 0.0

    def update(self, sample: Sample, force: bool = False) -> None:
        self.done += 1
        self.errors += sample.error is not None
        self.hits += sample.cached
        self.recent.add(time.monotonic())
        self.show(force)

    def show(self, force: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not force and now - self._last < 0.25):
            return
        self._last = now
        rate = self.recent.rate(now) or 0.0
        eta = self.recent.eta(self.total - self.done, now)
        eta_s = "?" if eta is None else f"{eta:.0f}s"
        sys.stderr.write(f"\rreplay {self.done}/{self.total}  errors {self.errors}  cached {self.hits}"
                         f"  {rate:.1f}/s  ETA {eta_s}   ")
        sys.stderr.flush()

    def finish(self) -> None:
        if self.enabled:
            self.show(force=True)
            sys.stderr.write("\n")
            sys.stderr.flush()


class _Engine:
    def __init__(self, cases: list[Case], variants: dict[str, dict], opts: ReplayOptions,
                 warnings: list[str]):
        if opts.cache_mode not in CACHE_MODES:
            raise ValueError(f"cache_mode must be one of {CACHE_MODES}, got {opts.cache_mode!r}")
        self.cases, self.opts, self.warnings = cases, opts, warnings
        self.variants = {name: build_variant({**spec, "name": name}) for name, spec in variants.items()}
        self.rng = random.Random(opts.seed)
        self.samples: dict[str, list[list[Sample | None]]] = {}
        self.cache = None
        if opts.cache_mode != "off" and opts.cache_path is not None:
            from .cache import ResponseCache

            self.cache = ResponseCache(opts.cache_path, read_only=opts.cache_mode == "offline")
        self.rpm = TokenBucket(opts.rpm / 60.0) if opts.rpm else None
        self.tpm = TokenBucket(opts.tpm / 60.0) if opts.tpm else None
        self.stop_reason: str | None = None
        self.cut_reason: str | None = None  # why the work was cut short before it started
        self.incomplete_reason: str | None = None
        self.calls = self.failed = 0
        self.min_calls = opts.min_calls_for_budget
        self._warm: dict[tuple, asyncio.Lock] = {}
        self._warm_done: set[tuple] = set()
        self._priced: set[str] = set()
        self.specs = variants
        self.stats: dict | None = None  # filled at the end with {"loop_lag_ms": ...} when given
        self.external_stop = None  # a multiprocessing.Event when this engine is a pool worker
        self.counters = None  # shared [done, errors, cached] when this engine is a pool worker
        self._threads = None  # executor for sync callables, sized to the concurrency
        self._reach: dict[str, tuple[bool, int]] = {}  # variant -> (answered once, connect failures)
        self._live_per_variant: dict[str, int] = {}
        self.loop_lag_ms: list[float] = []  # how late the loop woke a 10 ms timer (looplag.py)
        self._attempts: dict[int, int] = {}  # id(response) -> requests it took (retries included)
        self.workers_used = 1  # processes the calls were spread over (``workers: auto`` decides)
        self.auto_choice: dict | None = None  # what ``workers: auto`` measured and chose
        self._prepared_once = False  # requests and cache hits already read (by ``workers: auto``)
        self.kept_cases: int | None = None  # offline: results only for the cases looked up

    # ---------------------------------------------------------------- bookkeeping
    def warn(self, text: str) -> None:
        if text not in self.warnings:
            self.warnings.append(text)

    def _price(self, sample: Sample, model: str | None, price: dict | None) -> None:
        if sample.error is not None or sample.cost_usd is not None:
            return
        from .pricing import cost_usd

        sample.cost_usd = cost_usd(model, sample.input_tokens, sample.output_tokens,
                                   sample.cached_tokens, price=price)
        if sample.cost_usd is None and sample.input_tokens is not None and model not in self._priced:
            self._priced.add(model)
            self.warn(f"no price known for model {model!r}: cost_usd is null "
                      f"(set `price` on the variant)")

    def _account(self, sample: Sample) -> None:
        """Error budget over finished live calls."""
        self.calls += 1
        self.failed += sample.error is not None
        rate = self.opts.max_error_rate
        if rate is not None and self.calls >= self.min_calls and self.failed / self.calls > rate:
            self._stop(f"error budget exceeded: {self.failed} of {self.calls} calls failed "
                       f"(max_error_rate {rate})")

    def _stop(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
        if self.external_stop is not None and reason != OTHER_WORKER_STOPPED:
            self.external_stop.set()  # the other worker processes stop too

    def _cache_failed(self, e: ReplaygateError) -> None:
        """The cache cannot be written: take no new call (a rerun would pay for it again), end
        the run as incomplete with the cache's path and what to do."""
        if self.stop_reason is None:
            self._stop(str(e))
        elif str(e) != self.stop_reason:
            self.warn(str(e))

    # ---------------------------------------------------------------- one call
    async def _warmup(self, v: ModelVariant) -> None:
        key = (v.model, v.api_base, v.api_key_env, v.transport)
        if not self.opts.warmup or key in self._warm_done:
            return
        lock = self._warm.setdefault(key, asyncio.Lock())
        async with lock:
            if key in self._warm_done:
                return
            from .llm import LLMError, chat

            req = {"model": v.model, "messages": [{"role": "user", "content": WARMUP_TEXT}],
                   "params": {"max_tokens": 1}, "api_base": v.api_base, "api_key_env": v.api_key_env,
                   "transport": v.transport}
            try:
                await chat(req, timeout=min(self.opts.timeout_s, 30.0))
            except LLMError:
                pass  # the timed calls report any real problem
            if v.price is None:
                from .pricing import cost_map

                cost_map()  # read now (~0.1 s of JSON), not on the loop between the first timed calls
            self._warm_done.add(key)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return retry_after * self.rng.uniform(1.0, 1.1)
        base = min(self.opts.backoff_max_s, self.opts.backoff_s * (2 ** attempt))
        return base * self.rng.uniform(0.5, 1.5)

    async def _call(self, v: ModelVariant, req: dict, repeat: int) -> tuple[dict | None, Sample | None]:
        from .llm import LLMError, chat

        est = estimate_tokens(req) if self.tpm else 0
        attempt = 0
        while True:
            if self.rpm:
                await self.rpm.take(1)
            if self.tpm:
                await self.tpm.take(est)
            try:
                resp = await chat(req, timeout=self.opts.timeout_s, stream=v.stream)
            except LLMError as e:
                if e.auth:
                    from .llm import credentials_hint

                    what = "credentials missing" if e.type == "MissingCredentials" else "credentials rejected"
                    self._stop(f"authentication failed for variant {v.name!r} ({v.model}): {what}: "
                               f"{credentials_hint(v.model, v.api_key_env, v.api_base)} "
                               f"[{e.type}: {e.message[:200]}]")
                too_long = e.retry_after is not None and e.retry_after > self.opts.backoff_max_s
                if not e.retryable or attempt >= self.opts.max_retries or self.stop_reason or too_long:
                    tries = f" after {attempt + 1} attempts" if attempt else ""
                    message = f"{e.message}{tries}"
                    if too_long:  # never wait longer than the cap: the attempt is an error
                        message = (f"Retry-After {e.retry_after:g} s is beyond the "
                                   f"{self.opts.backoff_max_s:g} s cap on waits (max_retry_wait): {message}")
                    self._reachability(v, e)
                    err = error_sample(repeat, e.type, message)
                    err.attempts = attempt + 1
                    return None, err
                await asyncio.sleep(self._backoff(attempt, e.retry_after))
                attempt += 1
                if self.stop_reason:  # stopped while we waited: do not call a lost provider again
                    self._reachability(v, e)
                    return None, error_sample(repeat, e.type, f"{e.message} after {attempt} attempts")
                continue
            if self.tpm:
                used = (resp.get("input_tokens") or 0) + (resp.get("output_tokens") or 0)
                self.tpm.adjust(used - est)
            self._reachability(v, None)
            self._attempts[id(resp)] = attempt + 1
            return resp, None

    def _reachability(self, v: ModelVariant, err) -> None:
        """Stop when a variant's endpoint cannot be reached: it never answered (its first calls,
        5 or all of them in a smaller run, failed to connect even after retries), or it answered
        and then went away (``LOST_AFTER`` calls in a row failed to connect after all their
        retries, with no answer in between). Retrying a dead endpoint for every remaining call
        only burns minutes; the calls already answered are in the cache, so a rerun resumes."""
        ok, failed = self._reach.get(v.name, (False, 0))
        if err is None:
            self._reach[v.name] = (True, 0)  # an answer ends any streak of failures
            return
        if not err.retryable or err.status is not None or err.type == "Timeout":
            return  # an HTTP answer, a slow model or a bug of ours: not a missing endpoint
        failed += 1
        self._reach[v.name] = (ok, failed)
        where = v.api_base or "the provider's default endpoint"
        if ok and failed >= LOST_AFTER:
            self._stop(f"provider lost for variant {v.name!r} ({v.model} at {where}): it answered "
                       f"earlier, then {failed} calls in a row failed to connect after their retries; "
                       f"rerun to resume (answered calls are in the cache): {err.message[:300]}")
        elif not ok and failed >= min(UNREACHABLE_AFTER, self._live_per_variant.get(v.name, 1)):
            self._stop(f"provider unreachable for variant {v.name!r} ({v.model} at {where}): "
                       f"{err.message[:300]}")

    def _prepare(self, work: list[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
        """Build every model request and its cache key up front, and read all cache hits in a
        few queries (not one blocking query per call on the event loop)."""
        from .cache import UnsendableText, request_key

        self.prepared: dict[tuple[str, int, int], tuple[dict | None, str] | str] = {}
        self.hits: dict[str, tuple[dict, str | None]] = {}
        if self.opts.cache_mode == "offline":
            return self._prepare_offline(work)
        for name, ci, r in work:
            v = self.variants[name]
            if isinstance(v, ModelVariant):
                try:
                    req = v.request(self.cases[ci])
                    self.prepared[(name, ci, r)] = (req, request_key(req, r, sendable=True))
                except (UnreplayableCase, UnsendableText) as e:
                    self.prepared[(name, ci, r)] = str(e)
        if self.cache is not None and self.opts.cache_mode == "rw":
            keys = [p[1] for (name, _, _), p in self.prepared.items()
                    if isinstance(p, tuple) and name not in self.opts.live_variants]
            self.hits = self.cache.get_many_timed(keys)
        return work

    def _prepare_offline(self, work: list[tuple[str, int, int]], batch: int = 2000) -> list:
        """Offline: only the keys are kept (no call will be made, so no request), read in
        batches; the work ends with the first batch that has a miss, before the rest is hashed:
        a million-case run reports its first miss in moments, with memory for keys only. The
        cases after that batch are left out of the results (``self.kept_cases``): nothing was
        looked up for them, and a NotRun sample each would cost more than the whole lookup."""
        from .cache import request_key

        for start in range(0, len(work), batch):
            keys = []
            for item in work[start:start + batch]:
                name, ci, r = item
                v = self.variants[name]
                if isinstance(v, ModelVariant):
                    try:
                        key = request_key(v.request(self.cases[ci]), r)
                    except UnreplayableCase as e:
                        self.prepared[item] = str(e)
                        continue
                    self.prepared[item] = (None, key)
                    if name not in self.opts.live_variants:
                        keys.append(key)
            if self.cache is not None and keys:
                self.hits.update(self.cache.get_many_timed(keys))
            missing = [item for item in work[start:start + batch]
                       if isinstance(self.prepared.get(item), tuple)
                       and (self.prepared[item][1] not in self.hits or item[0] in self.opts.live_variants)]
            if missing:
                name, ci, r = missing[0]
                kept = work[:start + batch]
                self.kept_cases = kept[-1][1] + 1
                rest = len(self.cases) - self.kept_cases
                looked_up = sum(isinstance(p, tuple) for p in self.prepared.values())
                self.cut_reason = (f"offline mode: no cached response for case {self.cases[ci].id} "
                                   f"(variant {name}, repeat {r}); stopped at the first miss: "
                                   f"{len(missing):,} of the {looked_up:,} requests looked up are not "
                                   f"in the response cache")
                if rest:
                    self.cut_reason += (f"; the other {rest:,} cases were not looked up and are left "
                                        f"out of the partial run")
                return kept
        return work

    async def _model_sample(self, v: ModelVariant, case: Case, ci: int,
                            repeat: int) -> tuple[Sample, bool]:
        """(sample, was_live_call)."""
        prep = self.prepared[(v.name, ci, repeat)]
        if isinstance(prep, str):
            return error_sample(repeat, "UnreplayableCase", prep), False
        req, key = prep
        if self.opts.batch is not None and v.name in self.opts.batch:
            return self._batch_sample(v, repeat, key), False
        hit = self.hits.get(key) if v.name not in self.opts.live_variants else None
        if hit is not None:
            s = response_sample(hit[0], repeat, cached=True, cached_at=hit[1])
            self._price(s, v.model, v.price)
            self._usage_note(v, s)
            return s, False
        if self.opts.cache_mode == "offline":
            self.incomplete_reason = self.incomplete_reason or \
                "offline mode: some requests are not in the response cache"
            return error_sample(repeat, "CacheMiss", f"no cached response for case {case.id} "
                                f"(variant {v.name}, repeat {repeat}) and --offline forbids calls"), False
        await self._warmup(v)
        resp, err = await self._call(v, req, repeat)
        if err is not None:
            return err, True
        if self.cache is not None:
            try:
                self.cache.put(key, resp)  # committed now: a killed run resumes from here
            except ReplaygateError as e:  # a full disk: stop paying for calls nobody can keep
                self._cache_failed(e)
        s = response_sample(resp, repeat, cached=False)
        s.attempts = self._attempts.pop(id(resp), None)
        self._price(s, v.model, v.price)
        self._usage_note(v, s)
        return s, True

    def _batch_sample(self, v: ModelVariant, repeat: int, key: str) -> Sample:
        """A batch-mode variant's sample: the batch's answer (provenance ``batch``), its error, or
        an answer cached earlier; never a live call."""
        from .batch import batch_sample

        if self.opts.batch_pending:  # the batch phase could not finish: not fully measured
            self.incomplete_reason = self.incomplete_reason or self.opts.batch_pending
        s, note = batch_sample(self.opts.batch[v.name].get(key), self.hits.get(key), repeat, v.model,
                               v.price)
        if s is None:
            self.incomplete_reason = self.incomplete_reason or self.opts.batch_pending or \
                "batch mode: some requests have no batch answer yet; rerun to resume"
            return error_sample(repeat, "BatchPending", self.opts.batch_pending or "no batch answer yet")
        if note:
            self.warn(f"variant {v.name!r}: {note}")
        if s.provenance == "cache":
            self._price(s, v.model, v.price)
        self._usage_note(v, s)
        return s

    def _usage_note(self, v: ModelVariant, s: Sample) -> None:
        if s.usage_source == "estimated":
            self.warn(f"variant {v.name!r}: the provider reported no token usage"
                      f"{' for streamed calls' if v.stream else ''}; tokens and cost are litellm's "
                      f"estimates (usage_source: estimated) and are not compared with reported counts")
        elif (s.usage_source is None and v.stream and s.error is None and s.input_tokens is None
              and not v.uses_litellm()):
            self.warn(f"variant {v.name!r}: the provider sent no usage chunk in its streams; the direct "
                      f"HTTP path does not estimate tokens, so tokens and cost are null (transport: "
                      f"litellm estimates them with litellm's tokenizer)")

    async def _one(self, v, ci: int, repeat: int) -> Sample:
        case = self.cases[ci]
        if isinstance(v, ModelVariant):
            sample, live = await self._model_sample(v, case, ci, repeat)
        else:
            sample, live = await v.call(case, repeat, self._executor()), True
            if v.price:
                self._price(sample, v.target, v.price)
        if live:
            self._account(sample)
        return sample

    def _executor(self):
        if self._threads is None:
            from concurrent.futures import ThreadPoolExecutor

            self._threads = ThreadPoolExecutor(max_workers=max(1, self.opts.concurrency),
                                               thread_name_prefix="replaygate-callable")
        return self._threads

    # ---------------------------------------------------------------- the run
    def _static(self) -> list[tuple[str, int, int]]:
        """Fill samples of no-call variants; return the ordered live work items."""
        work = []
        for name, v in self.variants.items():
            self.samples[name] = [[None] * (1 if isinstance(v, (RecordedVariant, RunVariant))
                                            else self.opts.repeats) for _ in self.cases]
        for ci, case in enumerate(self.cases):
            for name, v in self.variants.items():
                if isinstance(v, RecordedVariant):
                    s = v.sample(case)
                    self._price(s, case.params.get("model"), v.price)
                    self.samples[name][ci][0] = s
                elif isinstance(v, RunVariant):
                    self.samples[name][ci] = v.samples(case)
            for r in range(self.opts.repeats):
                for name, v in self.variants.items():
                    if isinstance(v, (ModelVariant, CallableVariant)):
                        work.append((name, ci, r))
        return work

    def _worker_count(self, work: list, probed: int | None = None) -> int:
        """Processes to spread the calls over. Only model calls are spread (a user callable may
        keep state in its process); ``workers: auto`` takes ``probed`` (see ``_auto_workers``)."""
        if any(isinstance(self.variants[name], CallableVariant) for name, _, _ in work[:1000]):
            return 1
        if self.opts.cache_mode == "offline":  # no model call to spread: the cache answers all
            return 1
        k = (probed or 1) if self._auto() else self.opts.workers
        cases = len({ci for _, ci, _ in work})
        return max(1, min(int(k), cases, self.opts.concurrency))

    def _auto(self) -> bool:
        return self.opts.workers is None or self.opts.workers == "auto"

    async def _auto_workers(self, work: list) -> int:
        """``workers: auto``: how many processes the planned request rate needs. Runs of fewer
        than ``AUTO_MIN_CALLS`` calls that need an answer stay in one process without a probe.
        Otherwise, per model endpoint, the warm-up call and then ``PROBE_CALLS`` untimed calls
        one after another measure the latency L and this process's CPU per call c; the planned
        rate is concurrency / L (at most ``rpm`` / 60) and ``pool.auto_workers`` asks for enough
        processes to keep each at most half busy, one per usable core at most."""
        from .llm import LLMError, chat

        live = [(n, ci, r) for n, ci, r in work if isinstance(self.variants[n], ModelVariant)
                and not (self.opts.batch and n in self.opts.batch)
                and not (isinstance(self.prepared.get((n, ci, r)), tuple)
                         and self.prepared[(n, ci, r)][1] in self.hits and n not in self.opts.live_variants)]
        if len(live) < AUTO_MIN_CALLS or any(isinstance(self.variants[n], CallableVariant) for n, _, _ in work[:1000]):
            return 1
        lat, cpu = [], []
        for name in dict.fromkeys(n for n, _, _ in live):
            v = self.variants[name]
            await self._warmup(v)
            req = {"model": v.model, "messages": [{"role": "user", "content": WARMUP_TEXT}],
                   "params": {"max_tokens": 1}, "api_base": v.api_base, "api_key_env": v.api_key_env}
            for _ in range(PROBE_CALLS):
                t, c = time.perf_counter(), time.process_time()
                try:
                    await chat(req, timeout=min(self.opts.timeout_s, 30.0))
                except LLMError:
                    return 1  # the timed calls report the problem; no pool for a failing endpoint
                lat.append(time.perf_counter() - t)
                cpu.append(time.process_time() - c)
        latency, cpu_call = sorted(lat)[len(lat) // 2], sorted(cpu)[len(cpu) // 2]
        rate = self.opts.concurrency / latency if latency > 0 else 0.0
        if self.opts.rpm:
            rate = min(rate, self.opts.rpm / 60)
        k = auto_workers(len(live), rate, cpu_call, usable_cores())
        self.auto_choice = {"chosen": k, "latency_ms": round(latency * 1000, 1),
                            "cpu_ms_per_call": round(cpu_call * 1000, 2), "planned_rate_per_s": round(rate, 1),
                            "cores": usable_cores()}
        return k

    def _stopped(self) -> bool:
        if self.stop_reason is None and self.external_stop is not None and self.external_stop.is_set():
            self.stop_reason = OTHER_WORKER_STOPPED
        return self.stop_reason is not None

    def _needs_call(self, item: tuple[str, int, int]) -> bool:
        prep = self.prepared.get(item)
        if not isinstance(prep, tuple) or self.opts.cache_mode == "offline":
            return False
        if self.opts.batch and item[0] in self.opts.batch:
            return False  # batch mode: answered (or failed) by the batch phase, never called here
        return item[0] in self.opts.live_variants or prep[1] not in self.hits

    async def _warm_all(self, work: list) -> None:
        """Warm up every endpoint that will get a call before the first timed call and before
        the loop-lag monitor starts: the first call imports the client (litellm: seconds), which
        blocks the loop with no timed call in flight, so it is not a lag any timing suffered."""
        try:
            for name in dict.fromkeys(item[0] for item in work if self._needs_call(item)):
                if self._stopped():
                    return
                await self._warmup(self.variants[name])
        except asyncio.CancelledError:  # Ctrl-C with nothing in flight but the warm-up
            self._stop(INTERRUPTED)

    async def _run_local(self, work: list, progress: "_Progress") -> None:
        items = iter(work)

        async def worker() -> None:
            for name, ci, r in items:  # shared iterator: calls go out in list order
                if self._stopped():
                    return
                sample = await self._one(self.variants[name], ci, r)
                self.samples[name][ci][r] = sample
                progress.update(sample)
                if self.counters is not None:  # progress seen by the parent of a pool worker
                    with self.counters.get_lock():
                        self.counters[0] += 1
                        self.counters[1] += sample.error is not None
                        self.counters[2] += sample.cached

        n = max(1, min(self.opts.concurrency, len(work)))
        tasks = [asyncio.ensure_future(worker()) for _ in range(n)]
        try:
            # asyncio.wait, not gather: cancelling us (Ctrl-C) must not cancel the calls in flight
            await asyncio.wait(tasks)
        except asyncio.CancelledError:
            # first Ctrl-C: take no new call, let those in flight finish and reach the cache
            # (they are paid for); a second Ctrl-C aborts (asyncio raises KeyboardInterrupt)
            self._stop(INTERRUPTED)
            busy = sum(not t.done() for t in tasks)
            if busy:
                sys.stderr.write(f"\nreplaygate: stopping, waiting for {busy} call(s) in flight "
                                 f"(Ctrl-C again to abort)\n")
                sys.stderr.flush()
                await asyncio.wait(tasks, timeout=self.opts.timeout_s + 1)
            for t in tasks:
                t.cancel()
        for t in tasks:
            if t.done() and not t.cancelled() and t.exception() is not None:
                raise t.exception()  # a bug in the engine, not a provider error: surface it

    async def run(self) -> dict[str, list[CaseResult]]:
        work = self._static()
        self.min_calls = max(1, min(self.opts.min_calls_for_budget, len(work)))
        for name, _, _ in work:
            self._live_per_variant[name] = self._live_per_variant.get(name, 0) + 1
        enabled = sys.stderr.isatty() if self.opts.progress is None else bool(self.opts.progress)
        progress = _Progress(len(work), enabled and bool(work))
        try:
            workers = 1
            if work:
                probed = None
                if self._auto() and self.opts.cache_mode != "offline":  # offline makes no call
                    work = self._prepare(work)  # cache hits need no call: they do not count
                    self._prepared_once = True
                    try:
                        probed = await self._auto_workers(work)
                    except asyncio.CancelledError:  # Ctrl-C during the probe: no call was made yet
                        self._stop(INTERRUPTED)
                workers = self._worker_count(work, probed)
            self.workers_used = workers
            if workers > 1:
                await run_pool(self, work, workers, progress)
            else:
                from .looplag import LoopLag

                work = work if self._prepared_once else self._prepare(work)
                await self._warm_all(work)
                lag = LoopLag()
                lag.start()
                try:
                    await self._run_local(work, progress)
                finally:
                    await lag.stop()
                    self.loop_lag_ms.extend(lag.lags_ms)
        finally:
            progress.finish()
            if "replaygate.replay.openai_http" in sys.modules:  # the direct path's idle connections
                from .openai_http import aclose

                await aclose()
            if self.cache is not None:
                try:
                    self.cache.close()
                except ReplaygateError as e:
                    self._cache_failed(e)
            if self._threads is not None:
                self._threads.shutdown(wait=False, cancel_futures=True)
        self.stop_reason = self.stop_reason or self.cut_reason  # the samples not run say why
        results = self._results()
        if self.stats is not None:
            from .looplag import summarize

            self.stats["loop_lag_ms"] = summarize(self.loop_lag_ms)
            self.stats["workers"] = self.workers_used
            self.stats["workers_auto"] = self.auto_choice
        reason = self.stop_reason or self.incomplete_reason
        if reason:
            err = RunIncomplete(reason)
            err.partial = results  # type: ignore[attr-defined]
            err.warnings = self.warnings  # type: ignore[attr-defined]
            err.offline_cut = self.kept_cases is not None  # type: ignore[attr-defined]
            raise err
        return results

    def _results(self) -> dict[str, list[CaseResult]]:
        out: dict[str, list[CaseResult]] = {}
        why = self.stop_reason or "not run"
        cases = self.cases if self.kept_cases is None else self.cases[:self.kept_cases]
        for name, per_case in self.samples.items():
            rows = []
            for case, samples in zip(cases, per_case):
                filled = [s if s is not None else error_sample(r, "NotRun", why)
                          for r, s in enumerate(samples)]
                rows.append(CaseResult(id=case.id, source=_source(case), input=case.last_user_text(),
                                       expected=case.reference, samples=filled))
            out[name] = rows
        return out


async def replay(cases: list[Case], variants: dict[str, dict], opts: ReplayOptions | None = None,
                 *, warnings: list[str] | None = None, stats: dict | None = None) -> dict[str, list[CaseResult]]:
    """Replay every case under every variant (interleaved case by case). Returns
    ``{variant name: [CaseResult in case order]}`` with unscored samples. Warnings (unknown
    prices, ...) are appended to ``warnings``; ``stats`` gets ``loop_lag_ms`` ({p50, p99, max, n}
    or None). Raises ``RunIncomplete`` with ``.partial``."""
    engine = _Engine(cases, variants, opts or ReplayOptions(), warnings if warnings is not None else [])
    engine.stats = stats
    return await engine.run()


def replay_sync(cases: list[Case], variants: dict[str, dict], opts: ReplayOptions | None = None,
                *, warnings: list[str] | None = None, stats: dict | None = None) -> dict[str, list[CaseResult]]:
    """``replay`` in a fresh event loop. Ctrl-C cancels the run, which then raises
    ``RunIncomplete`` carrying the partial results."""
    return asyncio.run(replay(cases, variants, opts, warnings=warnings, stats=stats))


def result_summary(results: dict[str, list[CaseResult]]) -> dict[str, Any]:
    """Counts per variant (samples, errors by type, cache hits): for logs and tests."""
    out = {}
    for name, rows in results.items():
        errors: dict[str, int] = {}
        hits = n = 0
        for row in rows:
            for s in row.samples:
                n += 1
                hits += s.cached
                if s.error is not None:
                    errors[s.error.type] = errors.get(s.error.type, 0) + 1
        out[name] = {"samples": n, "cached": hits, "errors": errors}
    return out
