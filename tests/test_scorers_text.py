"""Text scorers on hand-worked examples (unicode, empty output, normalisation, negate)."""
import pytest

from replaygate.errors import ConfigError
from replaygate.model import Case, Sample
from replaygate.scoring import build_scorer


def run(spec: dict, output: str | None, reference=None):
    return build_scorer(spec).score(Case(id="c", reference=reference), Sample(output=output))


@pytest.mark.parametrize("opts,output,expected,passed", [
    ({}, "Paris", "Paris", True),
    ({}, "paris", "Paris", False),
    ({"ignore_case": True}, "PARIS", "paris", True),
    ({"ignore_case": True}, "STRASSE", "Straße", True),  # casefold, not lower
    ({"ignore_whitespace": True}, "  New\n York\t", "New York", True),
    ({}, " Paris", "Paris", False),
    ({"ignore_punctuation": True}, "Paris!", "Paris", True),
    ({"ignore_punctuation": True}, "«Paris»。", "Paris", True),  # unicode punctuation
    ({"ignore_punctuation": True, "ignore_whitespace": True}, "a , b", "a b", True),
    ({}, "cafe\u0301", "caf\u00e9", True),  # decomposed vs composed é
    ({}, "", "Paris", False),
    ({}, None, "", True),  # no text output equals an empty expectation
])
def test_equals_normalisation(opts, output, expected, passed):
    s = run({"type": "equals", **opts}, output, expected)
    assert s.passed is passed and s.score == (1.0 if passed else 0.0) and s.error is None


def test_equals_value_overrides_reference_and_json_reference():
    assert run({"type": "equals", "value": "B"}, "B", reference="A").passed is True
    assert run({"type": "equals"}, '{"a": [1, 2.0]}', reference={"a": [1, 2]}).passed is True
    assert run({"type": "equals"}, '{"a": true}', reference={"a": 1}).passed is False
    bad = run({"type": "equals"}, "{not json", reference={"a": 1})
    assert bad.passed is False and "not valid JSON" in bad.reason
    assert run({"type": "equals"}, "42", reference=42).passed is True


def test_missing_reference_is_an_error_not_a_zero():
    s = run({"type": "equals"}, "anything", reference=None)
    assert s.score is None and s.passed is None
    assert s.error.type == "ScorerError" and "expected" in s.error.message


def test_contains_family():
    assert run({"type": "contains", "value": "30 days"}, "Refunds within 30 days.").passed
    assert not run({"type": "contains", "value": "30 Days"}, "Refunds within 30 days.").passed
    assert run({"type": "icontains", "value": "30 DAYS"}, "Refunds within 30 days.").passed
    assert run({"type": "contains"}, "Das Ergebnis ist Größe 5", reference="Größe").passed
    assert run({"type": "icontains"}, "ΣΊΣΥΦΟΣ", reference="σίσυφος").passed  # final sigma folds
    s = run({"type": "contains_all", "value": ["a", "b", "c", "d"]}, "a b")
    assert s.score == 0.5 and not s.passed and "missing 2/4" in s.reason
    assert run({"type": "contains_all", "value": ["a", "b"], "threshold": 0.5}, "a").passed
    assert run({"type": "contains_any", "value": ["x", "日本"]}, "東京は日本の首都").passed
    assert not run({"type": "contains_any", "value": ["x", "y"]}, "").passed
    assert run({"type": "contains_any"}, "yes", reference=["no", "yes"]).passed
    assert run({"type": "not_contains", "value": ["password", "secret"]}, "all fine").passed
    s = run({"type": "not_contains", "value": "secret", "ignore_case": True}, "my SECRET")
    assert not s.passed and "secret" in s.reason
    assert run({"type": "contains"}, "x", reference=["a"]).error.type == "ScorerError"
    assert run({"type": "contains", "value": 30}, "within 30 days").passed  # YAML `value: 30`
    assert run({"type": "contains_all", "value": [30, "days"]}, "within 30 days").passed


def test_starts_with_and_negate():
    assert run({"type": "starts_with", "value": "Dear"}, "\n  Dear customer").passed
    assert not run({"type": "starts_with", "value": "Dear"}, "Hi, Dear").passed
    s = run({"type": "contains", "value": "sorry", "negate": True}, "I am sorry")
    assert s.score == 0.0 and not s.passed and s.reason.startswith("negated")
    assert run({"type": "contains", "value": "sorry", "negate": True}, "Sure!").passed


def test_regex():
    assert run({"type": "regex", "value": r"\b\d{3}-\d{4}\b"}, "call 555-1234 now").passed
    assert not run({"type": "regex", "value": r"^\d+$", "fullmatch": True}, "12a").passed
    assert run({"type": "regex", "value": r"^order #\d+$", "flags": "im"}, "hi\nORDER #12").passed
    assert not run({"type": "regex", "value": "x"}, None).passed
    with pytest.raises(ConfigError) as e:
        build_scorer({"type": "regex", "value": "(unclosed"}, "scorers[2]")
    assert e.value.field == "scorers[2].value"


def test_length_chars_words_tokens():
    assert run({"type": "length", "max": 5}, "héllo").passed  # 5 code points, not 6 bytes
    assert run({"type": "length", "max": 5}, "he\u0301llo").passed  # NFC first
    assert not run({"type": "length", "min": 1}, "").passed
    s = run({"type": "length", "min": 2, "max": 3, "unit": "words"}, "one two three four")
    assert not s.passed and "4 words outside [2..3]" in s.reason
    assert run({"type": "length", "min": 2, "unit": "words"}, "un  deux\n").passed
    assert run({"type": "length", "max": 3, "unit": "tokens"}, "hello world").passed
    assert not run({"type": "length", "max": 3, "unit": "tokens"}, "one two three four five").passed
    with pytest.raises(ConfigError):
        build_scorer({"type": "length"})
    with pytest.raises(ConfigError):
        build_scorer({"type": "length", "min": 5, "max": 2})


@pytest.mark.parametrize("text,refused", [
    ("I'm sorry, but I can't help with that.", True),
    ("I’m sorry, but I cannot assist with this request.", True),  # curly apostrophe
    ("I cannot provide medical advice.", True),
    ("As an AI language model, I do not have opinions.", True),
    ("I must decline to answer.", True),
    ("Your refund of $30 was issued. I cannot guarantee when the bank posts it.", False),
    ("Sorry for the wait! Your order ships tomorrow.", False),
    ("", False),
])
def test_refusal(text, refused):
    assert run({"type": "refusal"}, text).passed is refused


def test_refusal_extra_pattern_and_negate():
    assert run({"type": "refusal", "patterns": ["(?i)not my department"]}, "Not my department").passed
    assert run({"type": "refusal", "negate": True}, "Here you go.").passed


def test_against_recorded_uses_productions_answer_as_the_reference():
    from replaygate.model import Recorded
    from replaygate.scoring.similarity import token_f1

    trace = Case(id="t", reference="a hand-written answer", recorded=Recorded(output="Refunds take 30 days."))
    got = build_scorer({"type": "equals", "against": "recorded", "ignore_case": True}).score(
        trace, Sample(output="refunds take 30 days."))
    assert got.passed is True  # production's answer, not the case's reference
    sim = build_scorer({"type": "similarity", "against": "recorded"}).score(trace, Sample(output="Refunds take 30"))
    assert sim.score == pytest.approx(token_f1("Refunds take 30", "Refunds take 30 days."))
    # a golden row has no production answer: the scorer cannot score it (missing, not 0)
    s = build_scorer({"type": "contains", "against": "recorded"}).score(Case(id="g", reference="x"), Sample(output="x"))
    assert s.score is None and "recorded production answer" in s.error.message
    with pytest.raises(ConfigError):
        build_scorer({"type": "contains", "against": "production"})
