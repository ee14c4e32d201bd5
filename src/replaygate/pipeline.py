"""The library API behind the CLI: config in, Run / comparison out.

Each function wires the stages in their one-way order
(sources -> replay -> scoring -> metrics -> compare) and knows nothing of click.
"""
from __future__ import annotations

import datetime as _dt
import json
import statistics
import platform
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterator

from . import __version__
from .config import DEFAULT_DECISION, Config, ConfigProblems, line_of
from .errors import ConfigError, InputError, RunIncomplete
from .model import Case, CaseResult, Run


@dataclass
class RunSettings:
    """Flags that override the config for one invocation."""
    cache_mode: str = "rw"  # rw | off | offline | refresh
    concurrency: int | None = None
    workers: int | None = None
    repeats: int | None = None
    progress: bool = False
    seed: int | None = None
    notice: Callable[[str], None] | None = None  # told, before the replay, what a run cannot decide
    refresh_baseline: bool = False  # gate: call the baseline live, not from the cache
    batch: bool = False  # --batch: every model variant of the run through the provider's batch API


def _config_error(cfg: Config, err: ConfigError) -> ConfigError:
    """Attach the config's file and line to an error raised with only a field path."""
    if err.file is None and err.field:
        path = _parse_field(err.field)
        err.file = str(cfg.path)
        err.line = line_of(cfg.lines, path)
    return err


def _parse_field(field: str) -> tuple:
    out: list = []
    for part in field.replace("]", "").split("."):
        name, *idx = part.split("[")
        if name:
            out.append(name)
        out.extend(int(i) for i in idx)
    return tuple(out)


def build_scorers(cfg: Config) -> list:
    """Every scorer of the config; all bad entries reported at once, with their lines.
    (Duplicate names are already refused by the config loader.)"""
    from .scoring.registry import build_scorer

    scorers, problems = [], []
    for i, spec in enumerate(cfg["scorers"]):
        try:
            scorers.append(build_scorer(spec, f"scorers[{i}]"))
        except ConfigError as e:
            problems.append(_config_error(cfg, e))
    if problems:
        raise ConfigProblems(problems)
    return scorers


def load_cases(cfg: Config) -> list[Case]:
    from .sources import load_dataset

    return load_dataset(cfg["dataset"])


def _seed(cfg: Config, settings: RunSettings) -> int:
    return settings.seed if settings.seed is not None else cfg["seed"]


TIMED_METRICS = ("latency.", "ttft.")


def live_variants(cfg: Config, names: list[str], settings: RunSettings) -> frozenset:
    """Variants to call live even when the cache has their answers (which are rewritten), so
    latency compares like with like (compare/provenance.py): the baseline with
    --refresh-baseline; every variant when ``live_timing`` is ``always``, or ``auto`` (the
    default) and a gate is on latency or ttft. Nothing with --offline (no call is allowed: the
    latency gates are then not decided, and say why) or when every call is live anyway."""
    if settings.cache_mode != "rw" or cfg.cache_path is None:
        return frozenset()
    names = [n for n in names if n not in batch_variants(cfg, names, settings)]  # never timed live
    chosen = {cfg["baseline"]} if settings.refresh_baseline else set()
    mode = cfg.get("live_timing") or "auto"
    timed = any(str(g.get("metric", "")).startswith(TIMED_METRICS) for g in cfg["gates"])
    if mode == "always" or (mode == "auto" and timed and len(names) > 1):
        chosen |= set(names)
    return frozenset(n for n in chosen if n in names)


def batch_variants(cfg: Config, names: list[str], settings: RunSettings) -> list[str]:
    """The variants of ``names`` replayed through the provider's batch API: ``batch:`` in the
    variant, or every model variant with --batch."""
    return [n for n in names if cfg.variant(n).get("batch")
            or (settings.batch and cfg.variant(n).get("model"))]


def _run_batches(cfg: Config, names: list[str], settings: RunSettings, cases: list[Case], opts) -> None:
    """Batch mode (replay/batch.py): submit or resume the batches of the batch variants and wait
    for them; their answers (in the cache) and errors go to the engine through ``opts``. With
    --offline nothing is submitted: the cache serves what it has."""
    chosen = batch_variants(cfg, names, settings)
    if not chosen or settings.cache_mode == "offline":
        return
    from .replay.batch import check_variant, run_batches
    from .safetext import line

    for n in chosen:
        try:
            check_variant(n, cfg.variant(n))
        except ConfigError as e:
            raise _config_error(cfg, e) from None
    if opts.cache_mode == "off" or opts.cache_path is None:
        raise InputError("batch mode needs the response cache (its answers are collected there and "
                         "its batch ids kept beside it): set cache: in the config and drop --no-cache",
                         file=str(cfg.path), field="cache")
    import sys

    result = run_batches(cases, {n: cfg.variant(n) for n in chosen}, chosen, opts,
                         say=lambda text: sys.stderr.write(f"replaygate: {line(text)}\n"))
    opts.batch = {n: result.outcomes for n in chosen}
    opts.batch_pending = result.pending


def replay_options(cfg: Config, settings: RunSettings, names: list[str] | None = None):
    from .replay.engine import ReplayOptions

    return ReplayOptions(
        concurrency=settings.concurrency or cfg["concurrency"],
        workers=settings.workers or cfg["workers"],
        repeats=settings.repeats or cfg["repeats"],
        timeout_s=float(cfg["timeout"]),
        max_retries=int(cfg["max_retries"]),
        backoff_max_s=float(cfg["max_retry_wait"]),
        cache_mode=settings.cache_mode if cfg.cache_path else "off",
        cache_path=cfg.cache_path,
        rpm=cfg.get("rpm"),
        tpm=cfg.get("tpm"),
        max_error_rate=cfg.get("max_error_rate"),
        progress=settings.progress,
        seed=_seed(cfg, settings),
        live_variants=live_variants(cfg, names or [], settings),
    )


def environment(cfg: Config | None = None) -> dict[str, Any]:
    from .vcs import repo_info

    env: dict[str, Any] = {
        "replaygate_version": __version__,
        "python": platform.python_version(),
        "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if cfg is not None:
        env["config"] = str(cfg.path)
        env.update(repo_info(cfg.base_dir))
    return env


def _variant_record(variant: dict) -> dict:
    """The variant as stored in the run file: its config, never a secret (only api_key_env).
    Prompts read from a git ref are stored pinned to the commit (``git:SHA:/path``), with the ref
    names in ``git_refs``, so the run says what was read even after the branch moves."""
    record = {k: v for k, v in variant.items() if k != "base_dir"}
    prompt = dict(record.get("prompt") or {})
    refs = {}
    for k, spec in prompt.items():
        if isinstance(spec, str) and spec.startswith("git:"):
            from .vcs import pin_spec

            try:
                prompt[k], ref, sha = pin_spec(spec, variant.get("base_dir"))
            except ValueError:  # replay already read it; a ref gone since then stays as written
                continue
            if ref != sha:
                refs[ref] = sha
    if prompt:
        record["prompt"] = prompt
    if refs:
        record["git_refs"] = {**record.get("git_refs", {}), **refs}
    return json.loads(json.dumps(record, default=str))


def replay_variants(cfg: Config, names: list[str], settings: RunSettings,
                    cases: list[Case], stats: dict | None = None) -> tuple[dict[str, list[CaseResult]], list[str]]:
    """Replay several variants interleaved case by case. Returns results and warnings (``stats``
    gets the replay's event-loop lag); an incomplete replay raises RunIncomplete carrying
    `.partial` and `.warnings`."""
    from .replay.engine import replay_sync

    warnings: list[str] = []
    opts = replay_options(cfg, settings, names)
    _run_batches(cfg, names, settings, cases, opts)
    results = replay_sync(cases, {n: cfg.variant(n) for n in names}, opts, warnings=warnings, stats=stats)
    return results, warnings


def make_run(cfg: Config, name: str, cases: list[Case], results: list[CaseResult], scorers: list,
             warnings: list[str], *, complete: bool, settings: RunSettings, cache=None,
             incomplete: str | None = None, loop_lag: dict | None = None,
             replay_stats: dict | None = None) -> Run:
    """Score the replayed results (judges use `cache`) and assemble the Run with its summary. A
    counting scorer that cannot score (scoring.runner.scoring_problems) makes the run incomplete."""
    from .metrics import summarize
    from .scoring import judge_usage, score_results_sync
    from .compare.provenance import shares
    from .replay.looplag import note as looplag_note
    from .scoring.runner import scoring_problems

    by_id = {c.id: c for c in cases}
    warnings = list(warnings) + list(score_results_sync(
        by_id, results, scorers, cache=cache,
        concurrency=settings.concurrency or cfg["concurrency"], max_retry_wait=float(cfg["max_retry_wait"]),
        offline=settings.cache_mode == "offline", refresh=settings.cache_mode == "refresh") or [])
    problems, notes = scoring_problems(results, scorers, max_scorer_error_rate(cfg))
    reasons = ([incomplete] if incomplete else []) + problems
    variant = cfg.variant(name)
    env = environment(cfg)
    if variant.get("git_commit"):  # gate --baseline-ref: this side is the code at that commit
        env.update(git_commit=variant["git_commit"], git_ref=variant.get("git_ref"), git_branch=None,
                   git_dirty=False)
    run = Run(variant=_variant_record(variant), environment=env,
              complete=complete and not problems, cases=results, scorers=[s.info for s in scorers],
              incomplete_reasons=reasons, warnings=sorted(set(warnings) | set(notes)))
    run.environment["repeats"] = settings.repeats or cfg["repeats"]
    run.environment["loop_lag_ms"] = loop_lag
    conditions = run_conditions(cfg, name, settings)
    if conditions is not None:
        replay_stats = replay_stats or {}
        if replay_stats.get("workers") is not None:  # what the engine used (workers: auto decides)
            conditions["workers"] = replay_stats["workers"]
        if replay_stats.get("workers_auto"):
            run.environment["workers_auto"] = replay_stats["workers_auto"]
        run.environment["conditions"] = conditions
    run.provenance = shares(run)
    run.judge_usage = judge_usage(results)
    run.summary = summarize(run)
    live = [s.latency_ms for c in run.cases for s in c.samples
            if s.provenance == "live" and s.error is None and s.latency_ms is not None]
    lag_note = looplag_note(loop_lag, statistics.median(live) if live else None)
    if lag_note:
        run.warnings = sorted(set(run.warnings) | {lag_note})
    cut = _truncation_warning(run)
    if cut:
        run.warnings = sorted(set(run.warnings) | {cut})
    return run


def run_conditions(cfg: Config, name: str, settings: RunSettings) -> dict[str, Any] | None:
    """How the variant's calls were made, which shapes its latency (a serial server at
    concurrency 8 queues every call). None for variants that make no call here (recorded, run)."""
    variant = cfg.variant(name)
    if variant.get("recorded") or variant.get("run"):
        return None
    opts = replay_options(cfg, settings)
    workers = opts.workers if isinstance(opts.workers, int) else None  # auto: make_run fills in its choice
    out = {"concurrency": opts.concurrency, "workers": workers, "stream": bool(variant.get("stream")),
           "repeats": opts.repeats, "timeout_s": opts.timeout_s, "max_retries": opts.max_retries,
           "rpm": opts.rpm, "tpm": opts.tpm}
    if batch_variants(cfg, [name], settings):
        out["batch"] = True  # only when on: runs without batch mode keep their conditions as they were
    elif variant.get("model"):  # which client sent the calls (replay/transport.py); callables: none of ours
        from .replay.transport import transport_for

        out["transport"] = transport_for(variant)
    return out


def _truncation_warning(run: Run) -> str | None:
    """Answers cut off at the token limit can still pass a lenient scorer: say so."""
    from .metrics import TRUNCATED

    samples = [s for c in run.cases for s in c.samples if s.error is None]
    cut = [s for s in samples if s.finish_reason is not None and str(s.finish_reason).lower() in TRUNCATED]
    if not cut:
        return None
    return (f"{len(cut)} of {len(samples)} answers of variant {run.variant.get('name')!r} were cut off "
            f"at the token limit (finish_reason: length; metric finish.length.rate): raise max_tokens "
            f"or gate on finish.length.rate")


@contextmanager
def scoring_cache(cfg: Config, settings: RunSettings) -> Iterator[Any]:
    """The response cache for judge and embedding calls (None with --no-cache), closed after use."""
    if cfg.cache_path is None or settings.cache_mode == "off":
        yield None
        return
    from .replay.cache import ResponseCache

    cache = ResponseCache(cfg.cache_path, read_only=settings.cache_mode == "offline")
    try:
        yield cache
    finally:
        cache.close(raise_error=False)  # a write failure was raised by keep_scoring_cache


def keep_scoring_cache(cache, runs: list[Run]) -> None:
    """Commit the judges' cached answers. When that fails (full disk, read-only file) the runs
    are still good, but a rerun would pay for those calls again: stop with exit 3, the message
    naming the cache, the runs attached so the CLI still writes them."""
    if cache is None:
        return
    try:
        cache.flush()
    except RunIncomplete as e:
        for r in runs:
            r.warnings = sorted(set(r.warnings) | {str(e)})
        e.runs = runs  # type: ignore[attr-defined]
        raise


def _replay_and_score(cfg: Config, names: list[str], settings: RunSettings, cache) -> list[Run]:
    """Replay the variants interleaved and score them, one Run each. An incomplete replay
    raises RunIncomplete with `.runs`: the partial runs (complete=False), still scored, so
    the caller can write them."""
    scorers = build_scorers(cfg)
    if settings.cache_mode == "offline":
        _offline_probe(cfg, names, settings, scorers, cache)
    cases = load_cases(cfg)
    if len(names) == 2 and settings.notice is not None:  # a gate: say now which gates cannot decide
        from .validation import sensitivity_warnings

        for w in sensitivity_warnings(cfg, len(cases)):
            settings.notice(w)
        timed = [g["metric"] for g in cfg["gates"] if str(g.get("metric", "")).startswith(TIMED_METRICS)]
        batched = batch_variants(cfg, names, settings)
        if timed and batched:
            settings.notice(f"batch mode ({', '.join(batched)}): {', '.join(timed)} cannot be decided: a batch "
                            "answer's time is the provider's queue, not the model's latency, so batch "
                            "samples are never timed")
        if timed and settings.cache_mode == "offline":
            settings.notice(f"--offline: {', '.join(timed)} cannot be decided: answers served from the cache carry "
                            "another run's timing, and latency compares only calls timed in this run")
    stats: dict = {}
    try:
        results, warnings = replay_variants(cfg, names, settings, cases, stats)
    except RunIncomplete as e:
        e.runs = [make_run(cfg, n, cases, e.partial[n], scorers,  # type: ignore[attr-defined]
                           getattr(e, "warnings", []), complete=False, settings=settings, cache=cache,
                           incomplete=e.message, loop_lag=stats.get("loop_lag_ms"), replay_stats=stats)
                  for n in names]
        raise
    runs = [make_run(cfg, n, cases, results[n], scorers, warnings, complete=True, settings=settings,
                     cache=cache, loop_lag=stats.get("loop_lag_ms"), replay_stats=stats) for n in names]
    if len(runs) == 2:
        judge_pairs(cfg, cases, *runs, scorers, settings, cache)
    return runs


OFFLINE_PROBE_CASES = 2000


def _offline_probe(cfg: Config, names: list[str], settings: RunSettings, scorers: list, cache) -> None:
    """--offline on a large dataset: look the first cases up before reading the rest. A miss
    among them ends the run (RunIncomplete with the partial runs of those cases) without
    building, replaying, scoring and writing a million cases that cannot be answered."""
    from .sources import first_cases

    head = first_cases(cfg["dataset"], OFFLINE_PROBE_CASES)
    if head is None:
        return
    stats: dict = {}
    try:
        replay_variants(cfg, names, settings, head, stats)
    except RunIncomplete as e:
        if not getattr(e, "offline_cut", False):
            return  # not a cache miss: the whole run reports it the usual way
        e.message += f"; the dataset was read no further than its first {len(head):,} cases"
        e.runs = [make_run(cfg, n, head, e.partial[n], scorers,  # type: ignore[attr-defined]
                           getattr(e, "warnings", []), complete=False, settings=settings, cache=cache,
                           incomplete=e.message, loop_lag=stats.get("loop_lag_ms"))
                  for n in names]
        raise


def run_variant(cfg: Config, name: str, settings: RunSettings | None = None) -> Run:
    """Replay and score one variant (see _replay_and_score for an incomplete replay)."""
    settings = settings or RunSettings()
    with scoring_cache(cfg, settings) as cache:
        runs = _replay_and_score(cfg, [name], settings, cache)
        keep_scoring_cache(cache, runs)
    return runs[0]


def max_scorer_error_rate(cfg: Config) -> float:
    from .scoring.runner import DEFAULT_MAX_SCORER_ERROR_RATE

    value = cfg.get("max_scorer_error_rate")
    return DEFAULT_MAX_SCORER_ERROR_RATE if value is None else float(value)


def compare(base: Run, cand: Run, cfg: Config | None, seed: int = 0) -> dict:
    from .compare import compare_runs

    gates = cfg["gates"] if cfg else []
    decision = cfg["decision"] if cfg else dict(DEFAULT_DECISION)
    return compare_runs(base, cand, gates=gates, decision=decision, seed=seed,
                        pairwise=pairwise_judgments(cand))


def judge_pairs(cfg: Config, cases: list[Case], base: Run, cand: Run, scorers: list,
                settings: RunSettings, cache=None) -> None:
    """Pairwise judges see both answers of a case. Each case's win value (1 candidate better,
    0.5 tie, 0 baseline better) is stored on the candidate's samples, so a saved candidate run
    keeps its judgments and `compare` can gate on them later."""
    from .model import Score
    from .scoring import score_pairwise_sync
    from .scoring.runner import unscorable

    by_id = {c.id: c for c in cases}
    for scorer in (s for s in scorers if getattr(s, "pairwise", False)):
        res = score_pairwise_sync(by_id, base.cases, cand.cases, scorer, cache=cache,
                                  concurrency=settings.concurrency or cfg["concurrency"],
                                  max_retry_wait=float(cfg["max_retry_wait"]),
                                  offline=settings.cache_mode == "offline",
                                  refresh=settings.cache_mode == "refresh")
        for case in cand.cases:
            value = res["per_case"].get(case.id)
            if value is not None:
                for sample in case.samples:
                    sample.scores[scorer.name] = Score(score=value, passed=None, reason="pairwise win value")
        cand.judge_usage[scorer.name] = res.get("judge_usage")
        errors = [f"pairwise {scorer.name}: case {cid}: {msg}" for cid, msg in (res.get("errors") or {}).items()]
        cand.warnings = sorted(set(cand.warnings) | set(res.get("warnings") or []) | set(errors))
        if not scorer.spec.get("informational"):
            failed = [(cid, *_split_error(msg)) for cid, msg in (res.get("errors") or {}).items()]
            why = unscorable(scorer.name, len(failed) + int(res.get("n") or 0), failed,
                             max_scorer_error_rate(cfg))
            if why:
                cand.complete = False
                cand.incomplete_reasons.append(why)


def _split_error(text: str) -> tuple[str, str]:
    """'Type: message' (how score_pairwise lists a case's error) -> (type, message)."""
    etype, sep, msg = text.partition(": ")
    return (etype, msg) if sep else ("ScorerError", text)


def pairwise_judgments(cand: Run) -> list[dict]:
    """The pairwise judgments stored on a candidate run, in the shape compare_runs takes."""
    out = []
    for info in cand.scorers:
        if info.type != "pairwise":
            continue
        per_case = {}
        for case in cand.cases:
            got = [s.scores[info.name].score for s in case.samples
                   if info.name in s.scores and s.scores[info.name].score is not None]
            if got:
                per_case[case.id] = got[0]  # the same case-level value on every sample
        if per_case:
            out.append({"metric": f"pairwise.{info.name}.win_rate", "per_case": per_case})
    return out


def gate(cfg: Config, settings: RunSettings | None = None) -> tuple[dict, Run, Run]:
    """Run baseline and candidate interleaved, score both (pairwise judges too), compare and
    apply the gates. An incomplete replay raises RunIncomplete (exit 3) with `.runs`."""
    settings = settings or RunSettings()
    with scoring_cache(cfg, settings) as cache:
        base, cand = _replay_and_score(cfg, [cfg["baseline"], cfg["candidate"]], settings, cache)
        keep_scoring_cache(cache, [base, cand])
    return compare(base, cand, cfg, seed=_seed(cfg, settings)), base, cand


def calibrate(cfg: Config, settings: RunSettings | None = None, variant: str | None = None) -> tuple[dict, Run]:
    """A/A calibration of a variant (default: the baseline). It is replayed with repeats >= 2;
    the repeat index is part of the cache key, so repeat 0 reuses a normal run's cached answers,
    repeat 1 is a fresh, independent call (cached in turn, so a rerun is free), and even vs odd
    repeats form the A/A pair."""
    from .compare.calibrate import calibrate as _calibrate

    settings = settings or RunSettings()
    name = variant or cfg["baseline"]
    v = cfg.variant(name)
    if v.get("recorded") or v.get("run"):
        raise InputError(f"variant {name!r} replays stored outputs, which never vary: calibrate a "
                         "variant that calls a model or your pipeline (--variant NAME)",
                         file=str(cfg.path))
    repeats = max(2, settings.repeats or cfg["repeats"])
    run = run_variant(cfg, name, replace(settings, repeats=repeats))
    return _calibrate(run, None, cfg["gates"], cfg["decision"], seed=_seed(cfg, settings)), run
