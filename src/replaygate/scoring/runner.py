"""Score every replayed sample with every scorer; judges run concurrently under one limit."""
from __future__ import annotations

import asyncio
from collections import defaultdict

from replaygate.model import Case, CaseResult, ErrorInfo, Score
from replaygate.scoring.base import SCORER_ERROR, Scorer, ScoringContext

AUTH_ERRORS = ("AuthenticationError", "PermissionDeniedError", "MissingCredentials")
DEFAULT_MAX_SCORER_ERROR_RATE = 0.1

USAGE_KEYS = ("calls", "cache_hits", "input_tokens", "output_tokens", "cost_usd", "latency_ms",
              "retried_malformed")


async def score_results(cases: dict[str, Case], results: list[CaseResult], scorers: list[Scorer], *,
                        cache=None, concurrency: int = 8, offline: bool = False,
                        refresh: bool = False, max_retry_wait: float = 30.0) -> list[str]:
    """Fill ``Sample.scores`` in place for every sample whose replay succeeded (a failed sample
    gets no scores: metrics count it as failed). A scorer that crashes on a sample records a
    Score with an error there. Returns warnings (error counts per scorer, missing cases)."""
    ctx = ScoringContext(cache=cache, offline=offline, refresh=refresh, concurrency=concurrency,
                         max_retry_wait=max_retry_wait)
    warnings: list[str] = []
    # pairwise scorers compare two runs: the pipeline calls score_pairwise for them
    scorers = [s for s in scorers if not getattr(s, "pairwise", False)]
    pending: list[asyncio.Future] = []

    async def run_async(scorer: Scorer, case: Case, sample) -> None:
        sample.scores[scorer.name] = await scorer.ascore(case, sample, ctx)

    for result in results:
        case = cases.get(result.id)
        for sample in result.samples:
            if sample.error is not None:
                continue
            for scorer in scorers:
                if case is None:
                    sample.scores[scorer.name] = Score(None, None, error=ErrorInfo(
                        SCORER_ERROR, f"case {result.id!r} not found among the loaded cases"))
                elif scorer.is_async:
                    sample.scores[scorer.name] = Score(None, None)  # placeholder keeps scorer order
                    pending.append(asyncio.ensure_future(run_async(scorer, case, sample)))
                else:
                    sample.scores[scorer.name] = scorer.score(case, sample)
        if case is None and result.samples:
            warnings.append(f"case {result.id!r}: not among the loaded cases; its samples are "
                            "recorded as scorer errors")
    if pending:
        await asyncio.gather(*pending)
    warnings.extend(ctx.warnings)
    warnings.extend(error_summary(results, scorers))
    for name, total in judge_usage(results).items():
        if total["cost_unknown"]:
            warnings.append(f"scorer {name!r}: no price known for model {total['model']!r}: its judge "
                            "cost is null (set `price` on the scorer)")
    return warnings


def score_results_sync(cases: dict[str, Case], results: list[CaseResult], scorers: list[Scorer],
                       **kwargs) -> list[str]:
    return asyncio.run(score_results(cases, results, scorers, **kwargs))


def error_summary(results: list[CaseResult], scorers: list[Scorer]) -> list[str]:
    counts: dict[str, int] = defaultdict(int)
    first: dict[str, str] = {}
    scored: dict[str, int] = defaultdict(int)
    for result in results:
        for sample in result.samples:
            for name, score in sample.scores.items():
                scored[name] += 1
                if score.error is not None:
                    counts[name] += 1
                    first.setdefault(name, f"{result.id}: {score.error.type}: {score.error.message}")
    return [f"scorer {s.name!r}: {counts[s.name]} of {scored[s.name]} samples could not be scored "
            f"(first: {first[s.name]})" for s in scorers if counts.get(s.name)]


def unscorable(name: str, attempted: int, errors: list[tuple[str, str, str]],
               budget: float = DEFAULT_MAX_SCORER_ERROR_RATE) -> str | None:
    """Why a scorer cannot score this run, or None. ``errors``: (case id, error type, message) of
    the samples (or pairs) it could not score out of ``attempted``. A scorer cannot score when its
    model refused our credentials, when it scored nothing (an unreachable judge), when an offline
    run lacks its cached replies, or when it missed more than ``budget`` of its samples: a verdict
    resting on the few it could score would not describe the candidate."""
    if not errors or attempted == 0:
        return None
    cid, etype, msg = errors[0]
    auth = next((e for e in errors if e[1] in AUTH_ERRORS), None)
    if auth is not None:
        return f"scorer {name!r} could not score: its model refused the credentials ({auth[2][:300]})"
    miss = [e for e in errors if e[1] == "CacheMiss"]
    if miss:
        return (f"scorer {name!r} could not score {len(miss)} of {attempted} samples offline: its "
                f"replies are not in the cache (run once without --offline to record them)")
    share = len(errors) / attempted
    if len(errors) == attempted:
        return (f"scorer {name!r} could not score any of its {attempted} samples "
                f"(first: {cid}: {etype}: {msg[:300]})")
    if share > budget:
        return (f"scorer {name!r} could not score {len(errors)} of {attempted} samples ({share:.0%}), over "
                f"the scorer error budget max_scorer_error_rate {budget:g} (first: {cid}: {etype}: {msg[:300]})")
    return None


def scoring_problems(results: list[CaseResult], scorers: list[Scorer],
                     budget: float = DEFAULT_MAX_SCORER_ERROR_RATE) -> tuple[list[str], list[str]]:
    """(reasons the run is incomplete, notes): every counting scorer that cannot score makes the
    run incomplete; an informational one that could not score is only noted (it never counts
    against the candidate)."""
    problems, notes = [], []
    for scorer in scorers:
        if getattr(scorer, "pairwise", False):
            continue  # judged on pairs of runs: the pipeline checks it
        attempted, errors = 0, []
        for result in results:
            for sample in result.samples:
                sc = sample.scores.get(scorer.name)
                if sc is None:
                    continue
                attempted += 1
                if sc.error is not None:
                    errors.append((result.id, sc.error.type, sc.error.message))
        if scorer.informational:
            if errors:
                notes.append(f"informational scorer {scorer.name!r} could not score {len(errors)} of "
                             f"{attempted} samples (first: {errors[0][0]}: {errors[0][2][:200]}): "
                             "reported, not counted against the candidate")
            continue
        why = unscorable(scorer.name, attempted, errors, budget)
        if why:
            problems.append(why)
    return problems, notes


def judge_usage(results: list[CaseResult]) -> dict[str, dict]:
    """Per scorer, the judge/embedding calls' usage summed over the run (reported apart from the
    candidate's own cost and latency). Proposed home in run.json: ``"judge_usage"``. With
    ``judge_repeats`` > 1 also ``repeat_spread_mean``: the mean over samples of (max - min) of the
    repeated judgments, the judge's own noise."""
    totals: dict[str, dict] = {}
    spreads: dict[str, list[float]] = defaultdict(list)
    for result in results:
        for sample in result.samples:
            for name, score in sample.scores.items():
                usage = (score.details or {}).get("judge")
                if not usage:
                    continue
                t = totals.setdefault(name, {"model": usage.get("model")} | new_usage_total())
                add_usage(t, usage)
                judgments = score.details.get("judgments")
                if judgments:
                    spreads[name].append(max(judgments) - min(judgments))
    for name, values in spreads.items():
        totals[name]["repeat_spread_mean"] = sum(values) / len(values)
    return totals


def new_usage_total() -> dict:
    """Sums of ``Usage.as_dict`` values; ``cost_unknown`` counts scores whose fresh calls had no
    known price (their cost is left out of ``cost_usd``, which is then a lower bound)."""
    return {k: 0 for k in USAGE_KEYS} | {"cost_unknown": 0}


def add_usage(total: dict, usage: dict) -> None:
    for k in USAGE_KEYS:
        v = usage.get(k)
        if v is None:
            if k == "cost_usd":
                total["cost_unknown"] += 1
            continue
        total[k] += v
