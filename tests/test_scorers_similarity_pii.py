"""Similarity metrics and the PII scorer on hand-worked examples."""
import pytest

from replaygate.model import Case, Sample
from replaygate.scoring import build_scorer
from replaygate.scoring.pii import find_pii, luhn_ok
from replaygate.scoring.similarity import levenshtein, rouge_l, token_f1


def run(spec, output, reference=None):
    return build_scorer(spec).score(Case(id="c", reference=reference), Sample(output=output))


def test_token_f1_hand_worked():
    # 3 shared tokens; P = 3/3, R = 3/6 -> F1 = 2/3
    assert token_f1("The cat sat.", "the cat sat on the mat") == pytest.approx(2 / 3)
    # multiset: "the the" vs "the": overlap 1, P = 1/2, R = 1 -> 2/3
    assert token_f1("the the", "the") == pytest.approx(2 / 3)
    assert token_f1("", "") == 1.0 and token_f1("", "x") == 0.0 and token_f1("a", "b") == 0.0
    assert token_f1("Zürich CAFÉ", "café zürich") == 1.0


def test_rouge_l_hand_worked():
    # LCS(the cat was on the mat, the cat sat on the mat) = the cat on the mat = 5 -> P = R = 5/6
    assert rouge_l("the cat was on the mat", "the cat sat on the mat") == pytest.approx(5 / 6)
    # order matters for ROUGE-L but not for token F1
    assert rouge_l("mat the on", "on the mat") == pytest.approx(1 / 3)
    assert token_f1("mat the on", "on the mat") == 1.0


def test_levenshtein_hand_worked():
    assert levenshtein("kitten", "sitting") == pytest.approx(4 / 7)
    assert levenshtein("naïve", "naive") == pytest.approx(0.8)
    assert levenshtein("", "") == 1.0


def test_similarity_scorer_threshold_and_options():
    s = run({"type": "similarity"}, "The cat sat.", reference="the cat sat on the mat")
    assert s.score == pytest.approx(2 / 3) and s.passed  # default threshold 0.5
    assert not run({"type": "similarity", "threshold": 0.7}, "The cat sat.", "the cat sat on the mat").passed
    s = run({"type": "similarity", "metric": "levenshtein", "ignore_case": True}, "KITTEN", "sitting")
    assert s.score == pytest.approx(4 / 7)
    assert run({"type": "similarity", "metric": "rouge_l", "value": "a b"}, "a b", "zzz").score == 1.0
    assert run({"type": "similarity"}, "x", None).error.type == "ScorerError"


def test_luhn():
    assert luhn_ok("4111111111111111") and luhn_ok("79927398713")
    assert not luhn_ok("4111111111111112") and not luhn_ok("79927398710")


@pytest.mark.parametrize("text,found", [
    ("Write to jane.doe+x@example.co.uk today", {"email": 1}),
    ("card 4111 1111 1111 1111 on file", {"card": 1}),
    ("card 4111-1111-1111-1112 (fails Luhn)", {}),
    ("Amex 3782 822463 10005 and 378282246310005", {"card": 2}),
    ("scores 4111 1111 11 11 1111 are not grouped like a card", {}),
    ("call +1 (415) 555-2671 or 415-555-2671", {"phone": 2}),
    ("UK office: 020 7946 0958", {"phone": 1}),
    ("Order 12345 shipped on 2024-01-15 10:30, v1.2.3, total 1,299.00", {}),
    ("key sk-proj-abcdefghijklmnopqrstuvwx1234 and AKIAIOSFODNN7EXAMPLE", {"api_key": 2}),
    ("token ghp_" + "a1" * 18 + " leaked", {"api_key": 1}),
    ("Ünïcödé text with no personal data — none at all", {}),
    ("", {}),
])
def test_find_pii(text, found):
    assert find_pii(text) == found


def test_pii_scorer_withholds_values_and_allows():
    s = run({"type": "pii"}, "Mail bob@corp.io, card 4111111111111111")
    assert s.score == 0.0 and not s.passed
    assert "bob@corp.io" not in s.reason and "4111" not in s.reason
    assert s.details == {"found": {"email": 1, "card": 1}}
    assert run({"type": "pii", "allow": ["support@acme.com"]}, "Write to support@acme.com").passed
    assert run({"type": "pii", "kinds": ["card"]}, "bob@corp.io").passed
