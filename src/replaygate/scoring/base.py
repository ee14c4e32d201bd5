"""The Scorer base class: common options (threshold, weight, negate, informational), the turn of a
raw check into a ``Score``, and the rule that a crashing check is a scorer error, never a silent 0.

A scorer type subclasses ``Scorer``, declares its own config keys as a JSON Schema fragment in
``params`` (validated by the registry before ``setup`` runs), and implements ``check`` (sync) or
``acheck`` (async, for scorers that call a model). ``check`` returns an ``Outcome``: a raw score in
[0, 1] where 1 means "the property holds" and a short reason.
"""
from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

from replaygate.model import Case, ErrorInfo, Sample, Score, ScorerInfo

SCORER_ERROR = "ScorerError"


class ScorerFailure(Exception):
    """A check could not produce a score for this sample (missing reference, judge reply unusable).
    Recorded as a Score with an error; ``error_type`` lets a cache miss be told apart."""

    def __init__(self, message: str, error_type: str = SCORER_ERROR, details: dict | None = None):
        super().__init__(message)
        self.error_type = error_type
        self.details = details


@dataclass
class Outcome:
    score: float
    reason: str = ""
    details: dict[str, Any] | None = None


@dataclass
class ScoringContext:
    """What async scorers need besides the case and the sample: the response cache and its mode
    (offline: read only, a miss is an error; refresh: call again and overwrite), a shared
    concurrency limit for model calls."""
    cache: Any = None  # replaygate.replay.cache.ResponseCache or None
    offline: bool = False
    refresh: bool = False
    concurrency: int = 8
    max_retry_wait: float = 30.0  # seconds; config `max_retry_wait`, the replay engine's cap too
    warnings: list[str] = field(default_factory=list)
    # model endpoints (model, api_base, api_key_env) that cannot answer: -> (error type, message)
    broken: dict[tuple, tuple[str, str]] = field(default_factory=dict)
    answered: set[tuple] = field(default_factory=set)
    connect_failures: dict[tuple, int] = field(default_factory=dict)
    _semaphore: Any = None

    @property
    def semaphore(self) -> asyncio.Semaphore:
        # created on first use, inside the running event loop
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(max(1, self.concurrency))
        return self._semaphore


# Keys every scorer accepts (validated with the type's own params).
COMMON_PARAMS: dict[str, dict] = {
    # no dots: the name is one segment of metric names such as score.NAME.mean
    "name": {"type": "string", "pattern": r"^[A-Za-z0-9_][A-Za-z0-9_\-]*$"},
    "type": {"type": "string"},
    "threshold": {"type": "number", "minimum": 0, "maximum": 1},
    "weight": {"type": "number", "minimum": 0},
    "negate": {"type": "boolean"},
    "informational": {"type": "boolean"},
}


class Scorer:
    type: ClassVar[str] = ""
    params: ClassVar[dict[str, dict]] = {}  # JSON Schema properties of the type's own keys
    required: ClassVar[tuple[str, ...]] = ()
    default_threshold: ClassVar[float] = 1.0
    is_async: ClassVar[bool] = False

    def __init__(self, spec: dict, field_path: str = "scorer"):
        self.spec = dict(spec)
        self.field_path = field_path
        self.name: str = spec.get("name") or self.type
        self.threshold: float = float(spec.get("threshold", self.default_threshold))
        self.weight: float = float(spec.get("weight", 1.0))
        self.negate: bool = bool(spec.get("negate", False))
        self.informational: bool = bool(spec.get("informational", False))
        self.setup({k: v for k, v in spec.items() if k not in COMMON_PARAMS})

    # -- for subclasses -------------------------------------------------------------------------
    def setup(self, params: dict) -> None:
        """Read and pre-compile the type's params (already schema-validated). Raise
        ``ConfigError(field=self.field(key))`` for problems a schema cannot express."""

    def check(self, case: Case, sample: Sample) -> Outcome:
        raise NotImplementedError

    async def acheck(self, case: Case, sample: Sample, ctx: ScoringContext) -> Outcome:
        return self.check(case, sample)

    def field(self, key: str) -> str:
        return f"{self.field_path}.{key}"

    def expected(self, case: Case, key: str = "value") -> Any:
        """The scorer's own literal if set, else the case's reference (golden ``expected``), or
        with ``against: recorded`` the answer production gave (a trace case's recorded output)."""
        if self.spec.get(key) is not None:
            return self.spec[key]
        if self.spec.get("against") == "recorded":
            return recorded_answer(case)
        if case.reference is None:
            raise ScorerFailure(f"no expected value: set `{key}` on the scorer or give the case "
                                "an `expected` answer")
        return case.reference

    # -- common machinery -----------------------------------------------------------------------
    @property
    def info(self) -> ScorerInfo:
        return ScorerInfo(name=self.name, type=self.type, informational=self.informational,
                          threshold=self.threshold, weight=self.weight)

    def finish(self, outcome: Outcome) -> Score:
        s = float(outcome.score)
        if math.isnan(s):
            raise ScorerFailure("check returned NaN")
        s = min(1.0, max(0.0, s))
        reason = outcome.reason
        if self.negate:
            s = 1.0 - s
            reason = f"negated: {reason}" if reason else "negated"
        # Float noise must not flip a pass at the threshold (e.g. 0.7 computed as 0.69999...).
        passed = s >= self.threshold - 1e-9
        return Score(score=s, passed=passed, reason=reason, details=outcome.details)

    def failed(self, exc: BaseException) -> Score:
        if isinstance(exc, ScorerFailure):
            return Score(score=None, passed=None, reason="",
                         error=ErrorInfo(exc.error_type, str(exc)), details=exc.details)
        return Score(score=None, passed=None, reason="",
                     error=ErrorInfo(SCORER_ERROR, f"{type(exc).__name__}: {exc}"))

    def score(self, case: Case, sample: Sample) -> Score:
        """Score one sample (sync scorers). Never raises for a per-sample problem."""
        try:
            return self.finish(self.check(case, sample))
        except Exception as exc:  # a crashing check is a recorded error, not a crashed run
            return self.failed(exc)

    async def ascore(self, case: Case, sample: Sample, ctx: ScoringContext | None = None) -> Score:
        try:
            return self.finish(await self.acheck(case, sample, ctx or ScoringContext()))
        except Exception as exc:
            return self.failed(exc)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


# for scorers that compare with a reference: the case's `expected` (default) or production's answer
AGAINST = {"against": {"enum": ["reference", "recorded"]}}


def recorded_answer(case: Case) -> str:
    """Production's answer to a trace case, as a reference (``against: recorded``)."""
    rec = case.recorded
    if rec is None or rec.output is None:
        raise ScorerFailure("against: recorded needs the case's recorded production answer, and it has "
                            "none (a golden row, or a trace call without output)")
    return rec.output


def output_text(sample: Sample) -> str:
    return sample.output or ""
