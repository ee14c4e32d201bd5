"""Metric values of a Run (design.md "Metrics"), per case for paired comparison and as a summary.

Every metric is kept at sample level together with the case each sample belongs to, so the
comparison can average repeats within a case (cluster by case) and resample whole cases.

Rules that keep a metric honest:

* A sample passes (``quality.pass_rate``) when it has no error and every non-informational scorer
  passed. A sample whose call failed counts as failed and as score 0 in ``score.*`` metrics:
  failing to answer can never improve a metric.
* A scorer that could not score a sample (judge unreachable, malformed reply, crash, no reference)
  gives no score: the sample is missing (NaN) from that scorer's ``score.*`` metrics and from
  ``quality.pass_rate`` (unless another counting scorer failed it, which decides), never 0. The
  metrics' n count the samples that were scored; ``scoring.errors.rate`` counts the others.
* ``errors.rate`` counts failed calls only; ``scoring.errors.rate`` is the share of answered
  samples that a non-informational scorer could not score.
* Latency, time to first token and tokens are measured on samples without an error (errors are
  counted by ``errors.rate``); a case whose every sample failed has no latency.
* ``finish.length.rate``: share of answered samples cut off at the token limit (finish reason
  ``length``); samples without a known finish reason are left out.
* Cost: an unknown price (``cost_usd`` None on a successful sample) makes ``cost.*`` unknown
  (None, with the reason), never 0. Errored samples without a cost are left out and said so.
* Summary values are means over cases of per-case means (equal to sample means when every case
  has the same number of repeats); quantiles are taken over samples; ``cost.total`` is the sum.
"""
from __future__ import annotations

from dataclasses import dataclass
from operator import attrgetter

import numpy as np

from .model import Run

LATENCY_QUANTILES = {"p50": 0.50, "p90": 0.90, "p95": 0.95, "p99": 0.99}
TTFT_QUANTILES = {"p50": 0.50, "p95": 0.95}

# kinds: "rate" = per-case share of 0/1 sample flags; "mean" = per-case mean of sample values;
# "quantile" = quantile over samples; "total" = sum over samples (compared as n * mean per case).
KINDS = ("rate", "mean", "quantile", "total")


@dataclass
class MetricSeries:
    """One metric of one run at sample level, with the case of every sample."""
    name: str
    kind: str
    higher_is_better: bool
    values: np.ndarray  # per sample, float; NaN where the sample has no value for this metric
    case_index: np.ndarray  # per sample: index into the run's case list
    n_cases: int
    q: float | None = None  # quantile level, for kind "quantile"
    unknown: str | None = None  # why the metric cannot be computed (values then unused)
    note: str | None = None  # what was left out and why, when something was

    def case_means(self) -> np.ndarray:
        """Per-case mean over the case's samples with a value (NaN for cases without one)."""
        ok = np.isfinite(self.values)
        cnt = np.bincount(self.case_index[ok], minlength=self.n_cases).astype(float)
        tot = np.bincount(self.case_index[ok], weights=self.values[ok], minlength=self.n_cases)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(cnt > 0, tot / np.maximum(cnt, 1), np.nan)

    def case_sums(self) -> np.ndarray:
        ok = np.isfinite(self.values)
        return np.bincount(self.case_index[ok], weights=self.values[ok], minlength=self.n_cases)

    def value(self) -> float | None:
        """The run-level value of the metric (None when unknown or nothing was measured)."""
        if self.unknown is not None:
            return None
        v = self.values[np.isfinite(self.values)]
        if v.size == 0:
            return None
        if self.kind == "quantile":
            return float(np.quantile(v, self.q, method="inverted_cdf"))
        if self.kind == "total":
            return float(v.sum())
        m = self.case_means()
        return float(np.nanmean(m))


def direction(metric: str) -> bool:
    """True when higher is better: quality, scores and pairwise wins; latency, cost, tokens and
    errors are better lower."""
    return metric.split(".", 1)[0] in ("quality", "score", "pairwise")


_SCORES = attrgetter("scores")


def _column(samples: list, attr: str) -> np.ndarray:
    # numpy turns None into NaN for a float array: an unknown stays unknown, never 0
    return np.array(list(map(attrgetter(attr), samples)), dtype=float)


def scorer_names(run: Run) -> list[str]:
    """Scorers of the run header, then any other scorer name found in the samples."""
    names = [s.name for s in run.scorers]
    found = set().union(*(s.scores for case in run.cases for s in case.samples))
    return names + sorted(found - set(names))


def case_metrics(run: Run) -> dict[str, MetricSeries]:
    """Every metric of design.md for ``run``, keyed by metric name, at sample level."""
    info = {s.name: s for s in run.scorers}
    samples = [s for case in run.cases for s in case.samples]
    ci_arr = np.repeat(np.arange(len(run.cases), dtype=np.int64), [len(c.samples) for c in run.cases])
    dicts = list(map(_SCORES, samples))
    # pairwise judges score a pair of runs, not a sample: their metric is pairwise.NAME.win_rate
    names = [s.name for s in run.scorers if s.type != "pairwise"]
    names += sorted(set().union(*dicts) - set(info))
    counting = [n for n in names if not (n in info and info[n].informational)]
    bad = np.array([s.error is not None for s in samples], dtype=bool)
    lat, ttft, tin, tout, costs = (_column(samples, a) for a in
                                   ("latency_ms", "ttft_ms", "input_tokens", "output_tokens", "cost_usd"))
    for col in (lat, ttft, tin, tout):
        col[bad] = np.nan  # errored samples have no latency / tokens: errors.rate counts them

    score, passed, unscored = {}, {}, {}
    for n in names:
        got = [d.get(n) for d in dicts]
        # no score (a scorer error, or no entry at all) on an answered sample is missing, not 0
        missing = np.array([sc is None or sc.error is not None or sc.score is None for sc in got],
                           dtype=bool) & ~bad
        unscored[n] = missing
        ok = np.array([sc is not None and sc.passed is True and sc.error is None for sc in got], dtype=bool)
        passed[n] = np.where(missing, np.nan, (ok & ~bad).astype(float))
        sc_val = np.array([None if sc is None else sc.score for sc in got], dtype=float)
        # a failed call scores 0 (failing to answer never improves a score); unscored stays NaN
        score[n] = np.where(bad, 0.0, np.where(missing, np.nan, sc_val))
    failed_known = bad.copy()  # a counting scorer's fail decides even when another could not score
    any_missing = np.zeros(len(samples), dtype=bool)
    for n in counting:
        failed_known |= passed[n] == 0.0
        any_missing |= unscored[n]
    quality = np.where(failed_known, 0.0, np.where(any_missing, np.nan, 1.0))
    n_cases = len(run.cases)

    def series(name, kind, values, q=None, unknown=None, note=None):
        return MetricSeries(name, kind, direction(name), np.asarray(values, dtype=float), ci_arr,
                            n_cases, q=q, unknown=unknown, note=note)

    out: dict[str, MetricSeries] = {}
    out["quality.pass_rate"] = series(
        "quality.pass_rate", "rate", quality,
        unknown=None if counting else "no scorer counts towards quality (none configured, or all informational)")
    for n in names:
        out[f"score.{n}.mean"] = series(f"score.{n}.mean", "mean", score[n])
        out[f"score.{n}.pass_rate"] = series(f"score.{n}.pass_rate", "rate", passed[n])
    out["latency.mean"] = series("latency.mean", "mean", lat)
    for label, q in LATENCY_QUANTILES.items():
        out[f"latency.{label}"] = series(f"latency.{label}", "quantile", lat, q=q)
    if np.isfinite(ttft).any():
        for label, q in TTFT_QUANTILES.items():
            out[f"ttft.{label}"] = series(f"ttft.{label}", "quantile", ttft, q=q)
    no_cost = np.isnan(costs)
    # None stays unknown (never 0); an errored call without a cost is left out and said so
    missing = int((no_cost & ~bad).sum())
    skipped = int((no_cost & bad).sum())
    # a price cannot help a sample without token counts (a stream without a usage chunk)
    uncounted = int((no_cost & ~bad & (np.isnan(tin) | np.isnan(tout))).sum())
    why = "; ".join(w for w in (
        f"{uncounted} without token counts (a stream with no usage chunk: `stream: false`, or "
        "`transport: litellm` for its estimate)" if uncounted else "",
        f"{missing - uncounted} with no price for the model (set the variant's price)" if missing > uncounted else "")
        if w)
    unknown = f"cost unknown for {missing} of {len(samples)} samples: {why}" if missing else None
    note = f"{skipped} errored samples without a cost left out" if skipped else None
    out["cost.mean"] = series("cost.mean", "mean", costs, unknown=unknown, note=note)
    out["cost.total"] = series("cost.total", "total", costs, unknown=unknown, note=note)
    out["tokens.input.mean"] = series("tokens.input.mean", "mean", tin)
    out["tokens.output.mean"] = series("tokens.output.mean", "mean", tout)
    out["errors.rate"] = series("errors.rate", "rate", bad)  # failed calls only
    # answered samples a counting scorer could not score; a failed call was never scored
    scoring_err = np.zeros(len(samples), dtype=bool)
    for n in counting:
        scoring_err |= unscored[n]
    if counting:
        out["scoring.errors.rate"] = series("scoring.errors.rate", "rate",
                                            np.where(bad, np.nan, scoring_err.astype(float)))
    out["finish.length.rate"] = series("finish.length.rate", "rate", truncated(samples, bad))
    return out


# finish reasons that mean "cut off at the token limit" (litellm maps most providers to "length";
# traces keep the provider's own word)
TRUNCATED = frozenset(("length", "max_tokens", "max_output_tokens", "model_length"))


def truncated(samples: list, bad: np.ndarray) -> np.ndarray:
    """Per sample: 1 when the answer was cut off at the token limit, 0 when it ended otherwise,
    NaN when the call failed or no finish reason is known (a truncated answer can still pass a
    lenient scorer, so it is counted on its own)."""
    reasons = [s.finish_reason for s in samples]
    out = np.array([np.nan if r is None else float(str(r).lower() in TRUNCATED) for r in reasons], dtype=float)
    out[bad] = np.nan
    return out


def summarize(run: Run) -> dict[str, float | None]:
    """Run-level value of every metric, for ``Run.summary`` (None = unknown or not measured)."""
    return {name: s.value() for name, s in case_metrics(run).items()}
