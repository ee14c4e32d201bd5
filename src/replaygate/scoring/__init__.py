"""Scoring: a registry of scorers (deterministic checks, custom python checks, LLM judges) and
the pass that fills ``Sample.scores``.

    scorers = build_scorers(config["scorers"])          # ConfigError(field="scorers[i].key")
    warnings = await score_results(cases_by_id, results, scorers, cache=cache)

Each scorer gives a score in [0, 1] where 1 means "the property holds", a pass flag (score >=
threshold; each type documents its default threshold), a short reason, and for a crash an error
(type ScorerError), never a silent 0. litellm is only imported when a judge or embedding runs.
"""
from replaygate.scoring.base import Outcome, Scorer, ScorerFailure, ScoringContext
from replaygate.scoring.registry import build_scorer, build_scorers, register, scorer_types
from replaygate.scoring.pairwise import score_pairwise, score_pairwise_sync
from replaygate.scoring.runner import judge_usage, score_results, score_results_sync

__all__ = ["Outcome", "Scorer", "ScorerFailure", "ScoringContext", "build_scorer", "build_scorers",
           "register", "scorer_types", "judge_usage", "score_results", "score_results_sync",
           "score_pairwise", "score_pairwise_sync"]
