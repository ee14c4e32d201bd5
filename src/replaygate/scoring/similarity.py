"""Similarity of the output to the reference: token F1, ROUGE-L (rapidfuzz's LCS over word
tokens), normalised Levenshtein (rapidfuzz); and ``embedding_similarity`` (cosine of litellm
embeddings, cached like every model call)."""
from __future__ import annotations

from collections import Counter

from replaygate.model import Case, Sample
from replaygate.scoring.base import AGAINST, Outcome, Scorer, output_text
from replaygate.scoring.registry import register
from replaygate.scoring.textutil import NORMALIZE_PARAMS, as_text, normalize, normalize_opts, words


def token_f1(candidate: str, reference: str) -> float:
    """SQuAD-style F1 of the multisets of lower-cased word tokens."""
    cand, ref = words(candidate), words(reference)
    if not cand and not ref:
        return 1.0
    same = sum((Counter(cand) & Counter(ref)).values())
    if same == 0:
        return 0.0
    p, r = same / len(cand), same / len(ref)
    return 2 * p * r / (p + r)


def rouge_l(candidate: str, reference: str) -> float:
    """ROUGE-L F1 (beta = 1) from the longest common subsequence of word tokens."""
    from rapidfuzz.distance import LCSseq
    cand, ref = words(candidate), words(reference)
    if not cand and not ref:
        return 1.0
    lcs = LCSseq.similarity(cand, ref)
    if lcs == 0:
        return 0.0
    p, r = lcs / len(cand), lcs / len(ref)
    return 2 * p * r / (p + r)


def levenshtein(candidate: str, reference: str) -> float:
    """1 - edit distance / length of the longer text (characters)."""
    from rapidfuzz.distance import Levenshtein
    return float(Levenshtein.normalized_similarity(candidate, reference))


METRICS = {"token_f1": token_f1, "rouge_l": rouge_l, "levenshtein": levenshtein}


@register("similarity")
class Similarity(Scorer):
    """Similarity of the output to ``value`` (or the case's ``expected``) by ``metric``:
    ``token_f1`` (default; word-token overlap F1, case and punctuation ignored), ``rouge_l``
    (LCS-based F1 over word tokens) or ``levenshtein`` (1 - edit distance / longer length, on
    the text after the ``ignore_*`` options). Two empty texts score 1. Default threshold 0.5."""
    params = {"value": {"type": "string"}, "metric": {"enum": list(METRICS)}, **NORMALIZE_PARAMS, **AGAINST}
    default_threshold = 0.5

    def setup(self, params: dict) -> None:
        self.metric = params.get("metric", "token_f1")
        self.opts = normalize_opts(params)

    def check(self, case: Case, sample: Sample) -> Outcome:
        ref = normalize(as_text(self.expected(case)), **self.opts)
        out = normalize(output_text(sample), **self.opts)
        s = METRICS[self.metric](out, ref)
        return Outcome(s, f"{self.metric} {s:.3f}")
