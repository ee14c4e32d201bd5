"""Registry validation (ConfigError with field paths), custom python scorers, and score_results."""
import asyncio
import textwrap

import pytest

from replaygate.errors import ConfigError
from replaygate.model import Case, CaseResult, ErrorInfo, Sample, ScorerInfo
from replaygate.scoring import Outcome, Scorer, build_scorers, register, score_results, score_results_sync


@pytest.mark.parametrize("specs,field,words", [
    ([{"type": "equals"}, {"type": "nope"}], "scorers[1].type", "unknown scorer type"),
    ([{"name": "x"}], "scorers[0].type", "missing"),
    ([{"type": "contains", "valu": "a"}], "scorers[0].valu", "unknown key"),
    ([{"type": "contains", "threshold": 1.5}], "scorers[0].threshold", "1.5"),
    ([{"type": "regex"}], "scorers[0].value", "needs"),
    ([{"type": "contains_all", "value": ["a", {"b": 1}]}], "scorers[0].value", ""),
    ([{"type": "equals", "name": "a"}, {"type": "contains", "name": "a"}], "scorers[1].name", "duplicate"),
    ([{"type": "equals", "name": "has space"}], "scorers[0].name", ""),
    ([{"type": "equals", "name": "a.b"}], "scorers[0].name", ""),  # would break score.NAME.mean
    (["equals"], "scorers[0]", "mapping"),
])
def test_config_errors_name_the_field(specs, field, words):
    with pytest.raises(ConfigError) as e:
        build_scorers(specs)
    assert e.value.field == field and words in e.value.message


def test_info_and_defaults():
    a, b, c = build_scorers([{"type": "equals"},
                             {"type": "similarity", "name": "sim", "weight": 2, "informational": True},
                             {"type": "contains", "value": "x", "threshold": 0.0, "negate": True}])
    assert a.info == ScorerInfo(name="equals", type="equals", informational=False, threshold=1.0)
    assert b.info == ScorerInfo(name="sim", type="similarity", informational=True, threshold=0.5, weight=2.0)
    assert c.negate and c.threshold == 0.0


def test_register_decorator_adds_a_type():
    @register("test_always_half")
    class Half(Scorer):
        default_threshold = 0.4

        def check(self, case, sample):
            return Outcome(0.5, "half")

    (s,) = build_scorers([{"type": "test_always_half"}])
    score = s.score(Case(id="c"), Sample(output=""))
    assert score.score == 0.5 and score.passed


CHECKS = textwrap.dedent('''
    import asyncio
    def has_greeting(output, case, sample, word="hello"):
        return word in output.lower()
    def graded(output, case, sample):
        return {"score": len(output) / 10, "reason": f"{len(output)} chars"}
    def pair(output, case, sample):
        return (0.25, "quarter")
    def broken(output, case, sample):
        raise KeyError("boom")
    def weird(output, case, sample):
        return "yes"
    async def slow_ok(output, case, sample):
        await asyncio.sleep(0)
        return output == case.reference
''')


def test_python_scorer_from_file_and_module(tmp_path, monkeypatch):
    f = tmp_path / "checks.py"
    f.write_text(CHECKS)
    (greet,) = build_scorers([{"type": "python", "function": f"{f}:has_greeting", "args": {"word": "hi"}}])
    assert greet.score(Case(id="c"), Sample(output="Hi there")).passed
    (greet2,) = build_scorers([{"type": "python", "file": str(f), "function": "has_greeting"}])
    assert greet2.score(Case(id="c"), Sample(output="hello")).passed
    with pytest.raises(ConfigError) as e:
        build_scorers([{"type": "python", "file": str(f), "function": "x:has_greeting"}])
    assert e.value.field == "scorers[0].function"
    with pytest.raises(ConfigError) as e:
        build_scorers([{"type": "python", "file": str(tmp_path / "missing.py"), "function": "f"}])
    assert e.value.field == "scorers[0].file"
    monkeypatch.syspath_prepend(str(tmp_path))
    specs = [{"type": "python", "name": n, "function": f"checks:{n}"}
             for n in ("graded", "pair", "broken", "weird", "slow_ok")]
    graded, pair, broken, weird, slow_ok = build_scorers(specs)
    case = Case(id="c", reference="ok")
    assert graded.score(case, Sample(output="12345")).score == 0.5
    assert graded.score(case, Sample(output="x" * 20)).score == 1.0  # clipped into [0, 1]
    assert pair.score(case, Sample(output="")).reason == "quarter"
    err = broken.score(case, Sample(output=""))
    assert err.score is None and err.error.type == "ScorerError" and "KeyError" in err.error.message
    assert weird.score(case, Sample(output="")).error is not None
    assert slow_ok.is_async and asyncio.run(slow_ok.ascore(case, Sample(output="ok"))).passed


@pytest.mark.parametrize("ref,field", [("nomodule_xyz:f", "scorers[0].function"),
                                       ("json:no_such_fn", "scorers[0].function"),
                                       ("no_colon", "scorers[0].function"),
                                       ("/nonexistent/x.py:f", "scorers[0].function")])
def test_python_scorer_bad_reference(ref, field):
    with pytest.raises(ConfigError) as e:
        build_scorers([{"type": "python", "function": ref}])
    assert e.value.field == field


def test_score_results_fills_in_place_and_counts_errors(tmp_path):
    f = tmp_path / "crash.py"
    f.write_text("def crash(output, case, sample):\n    raise RuntimeError('bad ' + output)\n")
    scorers = build_scorers([{"type": "contains", "name": "has_a", "value": "a"},
                             {"type": "python", "name": "crash", "function": f"{f}:crash"},
                             {"type": "equals", "name": "exact"}])
    cases = {"c1": Case(id="c1", reference="abc"), "c2": Case(id="c2", reference=None)}
    results = [
        CaseResult(id="c1", samples=[Sample(repeat=0, output="abc"),
                                     Sample(repeat=1, error=ErrorInfo("Timeout", "took too long"))]),
        CaseResult(id="c2", samples=[Sample(output="xyz")]),
        CaseResult(id="ghost", samples=[Sample(output="a")]),
    ]
    warnings = score_results_sync(cases, results, scorers)
    s0 = results[0].samples[0].scores
    assert list(s0) == ["has_a", "crash", "exact"]
    assert s0["has_a"].passed and s0["exact"].passed
    assert s0["crash"].error.type == "ScorerError" and "RuntimeError: bad abc" in s0["crash"].error.message
    assert results[0].samples[1].scores == {}  # a failed replay gets no scores
    c2 = results[1].samples[0].scores
    assert c2["has_a"].passed is False and c2["exact"].error is not None  # no reference: error, not 0
    assert all(s.error is not None for s in results[2].samples[0].scores.values())
    assert any("ghost" in w for w in warnings)
    assert any(w.startswith("scorer 'crash': 3 of 3") for w in warnings)
    assert any(w.startswith("scorer 'exact': 2 of 3") for w in warnings)


def test_score_results_runs_async_custom_scorers(tmp_path):
    f = tmp_path / "a.py"
    f.write_text("import asyncio\nasync def ok(output, case, sample):\n"
                 "    await asyncio.sleep(0.01)\n    return output.startswith('y')\n")
    scorers = build_scorers([{"type": "python", "name": "ok", "function": f"{f}:ok"}])
    cases = {f"c{i}": Case(id=f"c{i}") for i in range(20)}
    results = [CaseResult(id=f"c{i}", samples=[Sample(output="yes" if i % 2 else "no")]) for i in range(20)]
    assert asyncio.run(score_results(cases, results, scorers, concurrency=4)) == []
    assert [r.samples[0].scores["ok"].passed for r in results] == [bool(i % 2) for i in range(20)]


def test_every_builtin_documents_its_default_threshold():
    from replaygate.scoring.registry import scorer_reference, scorer_types
    for name, cls in scorer_types().items():
        if name.startswith("test_"):
            continue
        doc = " ".join((cls.__doc__ or "").split()).lower()
        assert f"threshold {cls.default_threshold}" in doc or f"threshold: {cls.default_threshold}" in doc, name
    ref = scorer_reference()
    assert "| `json_schema` | `schema`*, `strip_fences` |" in ref and "| `judge` |" in ref


def test_docs_scorer_table_is_current():
    from pathlib import Path

    from replaygate.scoring.registry import scorer_reference
    doc = (Path(__file__).parent.parent / "docs" / "scorers.md").read_text(encoding="utf-8")
    table = [ln for ln in scorer_reference().splitlines() if "`test_" not in ln]
    assert "\n".join(table) in doc, "regenerate docs/scorers.md from scorer_reference()"
