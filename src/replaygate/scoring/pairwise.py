"""Pairwise judging: baseline and candidate answers for the same case, judged twice with the
positions swapped; a disagreement between the two orders counts as a tie (it is position bias
or noise, not a preference). Yields the metric ``pairwise.NAME.win_rate`` (ties count half) with
per-case values in [0, 1] for the paired statistics.

Config: a ``scorers:`` entry ``{name, type: pairwise, model, criteria?, ...model keys}``. It is
not a per-sample scorer: ``score_results`` skips it and the pipeline calls ``score_pairwise``
once both runs exist.
"""
from __future__ import annotations

import asyncio
from typing import Any

from replaygate.model import Case, CaseResult, Sample
from replaygate.scoring.base import Outcome, Scorer, ScorerFailure, ScoringContext
from replaygate.scoring.judge import SYSTEM, answer_text
from replaygate.scoring.judge_client import JUDGE_PARAMS, MalformedReply, ModelClient, Usage
from replaygate.scoring.judgeprompts import esc, load_prompt, tagged
from replaygate.scoring.registry import build_scorer, register
from replaygate.scoring.runner import add_usage, new_usage_total
from replaygate.scoring.textutil import as_text

DEFAULT_CRITERIA = ("Which answer better serves the user: correct, complete, relevant to the "
                    "question, faithful to the reference when one is given, and clear.")
WIN, TIE, LOSS = 1.0, 0.5, 0.0


def parse_winner(reply: dict) -> str:
    w = reply.get("winner")
    w = w.strip().upper() if isinstance(w, str) else w
    if w in ("A", "B"):
        return w
    if w in ("TIE", "DRAW", "EQUAL"):
        return "tie"
    raise MalformedReply(f'`winner` must be "A", "B" or "tie", got {reply.get("winner")!r}')


WINNER_SCHEMA = {"title": "pairwise_verdict", "type": "object", "additionalProperties": False,
                 "required": ["reason", "winner"],
                 "properties": {"reason": {"type": "string"}, "winner": {"type": "string", "enum": ["A", "B", "tie"]}}}


def combine(first: str, second: str) -> float:
    """Candidate's value from the two orders: first = (A baseline, B candidate), second =
    (A candidate, B baseline). Only agreement is a win or a loss."""
    cand_first = {"B": WIN, "A": LOSS, "tie": TIE}[first]
    cand_second = {"A": WIN, "B": LOSS, "tie": TIE}[second]
    return cand_first if cand_first == cand_second else TIE


@register("pairwise")
class Pairwise(Scorer):
    """Baseline vs candidate by an LLM judge, both orders; ``criteria`` (free text, optional),
    model keys as for ``judge``. Not a per-sample scorer (informational in a run's scorer
    list): see ``score_pairwise``. Its metric is ``pairwise.NAME.win_rate``, 0.5 = no
    difference; default threshold 0.5."""
    params = {"criteria": {"type": "string", "minLength": 1}, **JUDGE_PARAMS}
    required = ("model",)
    default_threshold = 0.5
    is_async = True
    pairwise = True

    def setup(self, params: dict) -> None:
        self.criteria = params.get("criteria", DEFAULT_CRITERIA)
        self.prompt = load_prompt("pairwise")
        self.client = ModelClient.from_spec(params)
        self.informational = True  # no per-sample score: must not count in quality.pass_rate

    def check(self, case: Case, sample: Sample) -> Outcome:
        raise ScorerFailure("pairwise compares two runs: use score_pairwise")

    async def acheck(self, case: Case, sample: Sample, ctx: ScoringContext) -> Outcome:
        raise ScorerFailure("pairwise compares two runs: use score_pairwise")

    def messages(self, case: Case, answer_a: str, answer_b: str) -> list[dict]:
        ref = None if case.reference is None else as_text(case.reference)
        text = self.prompt.render(criteria=esc(self.criteria), question_text=esc(case.last_user_text()),
                                  reference_block=tagged("reference", ref),
                                  answer_a=esc(answer_a), answer_b=esc(answer_b))
        return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}]

    async def judge_pair(self, ctx: ScoringContext, case: Case, base: Sample, cand: Sample,
                         repeat: int, usage: Usage) -> tuple[float, str, str]:
        b, c = answer_text(base), answer_text(cand)
        if b == c:  # nothing to prefer: no judge call (an A/A run costs nothing to judge)
            return TIE, "tie", "tie"
        first, second = await asyncio.gather(
            self.client.ask_json(ctx, self.prompt, self.messages(case, b, c), repeat, parse_winner, usage,
                                 WINNER_SCHEMA),
            self.client.ask_json(ctx, self.prompt, self.messages(case, c, b), repeat, parse_winner, usage,
                                 WINNER_SCHEMA))
        return combine(first, second), first, second


async def score_pairwise(cases: dict[str, Case], base_results: list[CaseResult],
                         cand_results: list[CaseResult], spec: dict | Pairwise, *, cache=None,
                         concurrency: int = 8, offline: bool = False, refresh: bool = False,
                         max_retry_wait: float = 30.0) -> dict[str, Any]:
    """Judge every case present in both runs. Samples are paired by repeat index and each pair
    judged in both orders; a case's value is the mean over its pairs (1 candidate better, 0.5 tie,
    0 baseline better). A failed sample loses to a successful one; two failed samples, a missing
    case, or a judge error leave the case out of ``per_case`` and are listed, never dropped
    silently. Returns::

        {"name", "metric": "pairwise.NAME.win_rate", "win_rate", "n", "per_case": {id: value},
         "counts": {"win", "tie", "loss"}, "details": {id: [{"repeat", "first", "second", "value"}]},
         "errors": {id: message}, "skipped": {id: reason}, "judge_usage": {...}, "warnings": [...]}
    """
    scorer = spec if isinstance(spec, Pairwise) else build_scorer(spec, "pairwise")
    if not isinstance(scorer, Pairwise):
        raise TypeError(f"score_pairwise needs a pairwise scorer, got {scorer.type!r}")
    ctx = ScoringContext(cache=cache, offline=offline, refresh=refresh, concurrency=concurrency,
                         max_retry_wait=max_retry_wait)
    base_by_id = {r.id: r for r in base_results}
    usage_total = {"model": scorer.client.model} | new_usage_total()
    per_case: dict[str, float] = {}
    details: dict[str, list[dict]] = {}
    errors: dict[str, str] = {}
    skipped: dict[str, str] = {}
    counts = {"win": 0, "tie": 0, "loss": 0}

    async def one_case(cand: CaseResult) -> None:
        base = base_by_id.get(cand.id)
        case = cases.get(cand.id)
        if base is None or case is None:
            skipped[cand.id] = "not in the baseline run" if base is None else "case not loaded"
            return
        values, rows = [], []
        usage = Usage(scorer.client.model)
        try:
            for rep, (bs, cs) in enumerate(zip(base.samples, cand.samples)):
                if bs.error is not None or cs.error is not None:
                    if bs.error is not None and cs.error is not None:
                        continue
                    value = LOSS if cs.error is not None else WIN
                    rows.append({"repeat": rep, "first": None, "second": None, "value": value,
                                 "note": "candidate failed" if cs.error is not None else "baseline failed"})
                else:
                    value, first, second = await scorer.judge_pair(ctx, case, bs, cs, rep, usage)
                    rows.append({"repeat": rep, "first": first, "second": second, "value": value})
                values.append(value)
        except ScorerFailure as exc:
            errors[cand.id] = f"{exc.error_type}: {exc}"
            return
        finally:
            add_usage(usage_total, usage.as_dict())
        if not values:
            skipped[cand.id] = "no pair of samples to compare (both sides failed)"
            return
        per_case[cand.id] = sum(values) / len(values)
        details[cand.id] = rows
        for v in values:
            counts["win" if v == WIN else "loss" if v == LOSS else "tie"] += 1

    await asyncio.gather(*(one_case(r) for r in cand_results))
    for r in base_results:
        if r.id not in {c.id for c in cand_results}:
            skipped[r.id] = "not in the candidate run"
    order = [r.id for r in cand_results if r.id in per_case]
    per_case = {i: per_case[i] for i in order}
    warnings = list(ctx.warnings)
    if errors:
        first_id = next(iter(errors))
        warnings.append(f"pairwise {scorer.name!r}: {len(errors)} cases could not be judged "
                        f"(first: {first_id}: {errors[first_id]})")
    if usage_total["cost_unknown"]:
        warnings.append(f"pairwise {scorer.name!r}: no price known for model {scorer.client.model!r}: "
                        "its judge cost is null (set `price` on the scorer)")
    if skipped:
        warnings.append(f"pairwise {scorer.name!r}: {len(skipped)} cases not compared "
                        "(see `skipped`)")
    return {"name": scorer.name, "metric": f"pairwise.{scorer.name}.win_rate",
            "win_rate": sum(per_case.values()) / len(per_case) if per_case else None,
            "n": len(per_case), "per_case": per_case, "counts": counts, "details": details,
            "errors": errors, "skipped": skipped, "judge_usage": usage_total, "warnings": warnings}


def score_pairwise_sync(*args, **kwargs) -> dict[str, Any]:
    return asyncio.run(score_pairwise(*args, **kwargs))
