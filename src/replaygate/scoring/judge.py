"""LLM-as-judge scorers: ``judge`` with a built-in or free-text rubric, and ``embedding_similarity``.

Built-in rubrics (all default to ``threshold: 0.5``):

- ``groundedness`` (alias ``faithfulness``): the answer is split into claims, each checked against
  the retrieved context (the sample's ``context`` from a callable variant, else the case's); score = supported / total claims (an answer with no claims scores 1);
  the unsupported claims are listed in the reason and in ``details``.
- ``answer_relevancy``: does the answer address the question (0..10 scale, scaled to [0, 1]).
- ``context_precision``: is each retrieved document relevant to reaching the reference; score =
  average precision over the ranked documents (needs ``context`` and ``expected``).
- ``context_recall``: the reference split into statements, each checked against the context;
  score = attributable / total (needs ``context`` and ``expected``).
- ``correctness``: the answer against the reference (0..10, scaled).
- any other text is a free rubric graded 0..10 (given the question, answer, and the reference
  and context when the case has them).

``judge_repeats: K`` asks K times (independent cache entries) and averages.
"""
from __future__ import annotations

import asyncio
import math
import re
from typing import Any, Callable

from replaygate.errors import ConfigError
from replaygate.model import Case, Sample
from replaygate.scoring.base import (AGAINST, Outcome, Scorer, ScorerFailure, ScoringContext, output_text,
                                     recorded_answer)
from replaygate.scoring.judge_client import JUDGE_PARAMS, MODEL_PARAMS, MalformedReply, ModelClient, Usage
from replaygate.scoring.judgeprompts import context_block, esc, load_prompt, tagged
from replaygate.scoring.registry import register
from replaygate.scoring.textutil import as_text, clip

SYSTEM = "You are a careful, impartial evaluator. You reply with JSON only."
BUILTIN_RUBRICS = ("groundedness", "faithfulness", "answer_relevancy", "context_precision",
                   "context_recall", "correctness")
_ALIASES = {"faithfulness": "groundedness"}


def answer_text(sample: Sample) -> str:
    """The answer a judge sees: the text, or the tool calls when the model only called tools."""
    text = output_text(sample)
    if text or not sample.tool_calls:
        return text
    return "\n".join(f"[tool call] {t.name}({t.arguments})" for t in sample.tool_calls)


# -------------------------------------------------------------------- reply parsers (kind -> value)

def parse_score(reply: dict) -> tuple[float, str]:
    value = reply.get("score")
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise MalformedReply(f"score is not a number: {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) \
            or not 0 <= value <= 10:
        raise MalformedReply(f"`score` must be a number from 0 to 10, got {value!r}")
    return float(value) / 10.0, str(reply.get("reason", ""))


def _flag(value: Any, what: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "yes", "false", "no"):
        return value.strip().lower() in ("true", "yes")
    raise MalformedReply(f"{what} must be true or false, got {value!r}")


def parse_claims(reply: dict) -> list[dict]:
    claims = reply.get("claims")
    if not isinstance(claims, list):
        raise MalformedReply("`claims` must be a list")
    out = []
    for c in claims:
        if not isinstance(c, dict) or not isinstance(c.get("claim"), str):
            raise MalformedReply("each claim needs a `claim` text")
        out.append({"claim": c["claim"], "supported": _flag(c.get("supported"), "`supported`"),
                    "reason": str(c.get("reason", ""))})
    return out


def parse_verdicts(n_docs: int) -> Callable[[dict], list[bool]]:
    def parse(reply: dict) -> list[bool]:
        verdicts = reply.get("verdicts")
        if not isinstance(verdicts, list) or len(verdicts) != n_docs:
            raise MalformedReply(f"`verdicts` must list all {n_docs} documents")
        by_index = {}
        for pos, v in enumerate(verdicts, 1):
            if not isinstance(v, dict):
                raise MalformedReply("each verdict must be an object")
            idx = v.get("index", pos)
            by_index[idx if isinstance(idx, int) else pos] = _flag(v.get("relevant"), "`relevant`")
        if sorted(by_index) != list(range(1, n_docs + 1)):
            raise MalformedReply("verdict indexes must be 1..n, once each")
        return [by_index[i] for i in range(1, n_docs + 1)]
    return parse


# -------------------------------------------------------------------- verdict schemas (structured output)
# The shapes the prompts ask for, as JSON Schemas within OpenAI's strict subset (every property
# required, no additional ones) so the same schema works for OpenAI, llama.cpp, vLLM and Ollama.
# "reason" comes first: a model that writes its reason before its score judges better.

def _object(title: str, props: dict) -> dict:
    return {"title": title, "type": "object", "properties": props, "required": list(props),
            "additionalProperties": False}


_REASON = {"type": "string"}
SCORE_SCHEMA = _object("score_verdict", {"reason": _REASON,
                                         "score": {"type": "integer", "minimum": 0, "maximum": 10}})
CLAIMS_SCHEMA = _object("claims_verdict", {"claims": {"type": "array", "items": _object(
    "claim", {"claim": {"type": "string"}, "supported": {"type": "boolean"}, "reason": _REASON})}})
VERDICTS_SCHEMA = _object("documents_verdict", {"verdicts": {"type": "array", "items": _object(
    "document", {"index": {"type": "integer", "minimum": 1}, "relevant": {"type": "boolean"},
                 "reason": _REASON})}})


def average_precision(relevant: list[bool]) -> float:
    """Mean of precision@k over the ranks k holding a relevant document (0 when none is)."""
    hits, total = 0, 0.0
    for k, rel in enumerate(relevant, 1):
        if rel:
            hits += 1
            total += hits / k
    return total / hits if hits else 0.0


# -------------------------------------------------------------------- the judge scorer

@register("judge")
class Judge(Scorer):
    """An LLM judge (see the module docstring for the rubrics). Keys: ``rubric`` (a built-in name
    or free text), ``model`` (any litellm model string), optional ``api_base``, ``api_key_env``,
    ``params`` (default temperature 0), ``price`` (USD per million tokens), ``timeout`` (s,
    default 60), ``retries`` (provider errors, default 2), ``judge_repeats`` (default 1),
    ``structured_output`` (auto | json_schema | json_object | off, default auto: see
    judge_client). Default threshold 0.5."""
    params = {"rubric": {"type": "string", "minLength": 1}, "judge_repeats": {"type": "integer",
              "minimum": 1, "maximum": 20}, **JUDGE_PARAMS, **AGAINST}
    required = ("rubric", "model")
    default_threshold = 0.5
    is_async = True

    def setup(self, params: dict) -> None:
        rubric = params["rubric"].strip()
        self.builtin = _ALIASES.get(rubric, rubric) if rubric in BUILTIN_RUBRICS else None
        if self.builtin is None and re.fullmatch(r"[a-z_]+", rubric):
            raise ConfigError(f"unknown built-in rubric {rubric!r} (built-ins: {', '.join(BUILTIN_RUBRICS)}); "
                              "a free-text rubric is a sentence describing what to check",
                              field=self.field("rubric"))
        self.rubric = rubric
        self.prompt = load_prompt(self.builtin or "rubric")
        self.client = ModelClient.from_spec(params)
        self.repeats = int(params.get("judge_repeats", 1))

    def check(self, case: Case, sample: Sample) -> Outcome:
        raise ScorerFailure("a judge is async: score it with score_results")

    def messages(self, case: Case, sample: Sample) -> tuple[list[dict], Callable[[dict], Any]]:
        """The judge conversation for this case and how to parse the reply."""
        question = case.last_user_text()
        # a callable variant (a RAG pipeline) reports what it retrieved; else the case's documents
        docs = sample.context if sample.context is not None else case.context
        values = {"question_text": esc(question), "question_block": tagged("question", question or None),
                  "answer": esc(answer_text(sample))}
        kind = self.builtin or "rubric"
        if kind in ("groundedness", "context_precision", "context_recall"):
            if not docs:
                raise ScorerFailure(f"{kind} needs retrieved `context` (the case's or the sample's), "
                                    "and there is none")
            values["context"] = context_block(docs)
        reference = recorded_answer(case) if self.spec.get("against") == "recorded" else case.reference
        if kind in ("context_precision", "context_recall", "correctness"):
            if reference is None:
                raise ScorerFailure(f"{kind} needs the case's `expected` answer, and it has none")
            values["reference"] = esc(as_text(reference))
        if kind == "rubric":
            values.update(rubric=esc(self.rubric),
                          reference_block=tagged("reference", None if reference is None
                                                 else as_text(reference)),
                          context_block=("\n" + context_block(docs) + "\n") if docs else "")
        parse: Callable[[dict], Any] = {
            "groundedness": parse_claims, "context_recall": parse_claims,
            "context_precision": parse_verdicts(len(docs))}.get(kind, parse_score)
        return [{"role": "system", "content": SYSTEM},
                {"role": "user", "content": self.prompt.render(**values)}], parse

    @property
    def schema(self) -> dict:
        """The JSON Schema of this judge's verdict (for structured output)."""
        kind = self.builtin or "rubric"
        return {"groundedness": CLAIMS_SCHEMA, "context_recall": CLAIMS_SCHEMA,
                "context_precision": VERDICTS_SCHEMA}.get(kind, SCORE_SCHEMA)

    def judgment(self, verdict: Any) -> Outcome:
        """One parsed verdict as a score."""
        kind = self.builtin or "rubric"
        if kind in ("groundedness", "context_recall"):
            if not verdict:
                return Outcome(1.0, "no claims to check", {"claims": []})
            bad = [c["claim"] for c in verdict if not c["supported"]]
            score = 1.0 - len(bad) / len(verdict)
            what = "claims supported by the context" if kind == "groundedness" \
                else "reference statements found in the context"
            reason = f"{len(verdict) - len(bad)}/{len(verdict)} {what}"
            if bad:
                reason += "; unsupported: " + "; ".join(repr(clip(b, 80)) for b in bad[:5])
            return Outcome(score, reason, {"claims": verdict, "unsupported": bad})
        if kind == "context_precision":
            ap = average_precision(verdict)
            return Outcome(ap, f"{sum(verdict)}/{len(verdict)} documents relevant, average precision "
                               f"{ap:.3f}", {"relevant": verdict})
        score, reason = verdict
        return Outcome(score, reason)

    async def acheck(self, case: Case, sample: Sample, ctx: ScoringContext) -> Outcome:
        messages, parse = self.messages(case, sample)
        usage = Usage(self.client.model)
        verdicts = await asyncio.gather(*(self.client.ask_json(ctx, self.prompt, messages, k, parse, usage,
                                                               self.schema)
                                          for k in range(self.repeats)))
        outcomes = [self.judgment(v) for v in verdicts]
        first = outcomes[0]
        details = dict(first.details or {})
        details["prompt"] = self.prompt.id
        details["judge"] = usage.as_dict()
        if self.repeats == 1:
            return Outcome(first.score, first.reason, details)
        scores = [o.score for o in outcomes]
        mean = sum(scores) / len(scores)
        details["judgments"] = scores
        spread = max(scores) - min(scores)
        return Outcome(mean, f"mean of {len(scores)} judgments {mean:.3f} (spread {spread:.2f}); "
                             f"first: {first.reason}", details)


@register("embedding_similarity")
class EmbeddingSimilarity(Scorer):
    """Cosine similarity of the embeddings of the output and ``value`` (or the case's
    ``expected``), from ``model`` through litellm; each text's vector is cached. Keys as for
    ``judge`` (model, api_base, api_key_env, timeout, retries). Default threshold 0.8."""
    params = {"value": {"type": "string"}, **MODEL_PARAMS, **AGAINST}
    required = ("model",)
    default_threshold = 0.8
    is_async = True

    def setup(self, params: dict) -> None:
        self.client = ModelClient.from_spec(params)

    def check(self, case: Case, sample: Sample) -> Outcome:
        raise ScorerFailure("embedding_similarity is async: score it with score_results")

    async def acheck(self, case: Case, sample: Sample, ctx: ScoringContext) -> Outcome:
        ref = as_text(self.expected(case))
        usage = Usage(self.client.model)
        a, b = await self.client.embed(ctx, [output_text(sample), ref], usage)
        na = math.sqrt(sum(x * x for x in a))
        nb = math.sqrt(sum(x * x for x in b))
        if na == 0 or nb == 0:
            raise ScorerFailure("an embedding vector is all zeros")
        cos = sum(x * y for x, y in zip(a, b)) / (na * nb)
        # cosine is in [-1, 1]; opposite meaning is as bad as unrelated, so clip at 0
        return Outcome(max(0.0, cos), f"cosine {cos:.3f}", {"judge": usage.as_dict()})
