"""The statistics end to end on the local server: a noisy model compared with itself rarely
fails the gate; a model 10 points worse on n=300 is caught."""
import itertools
import json

from click.testing import CliRunner

from replaygate.cli import cli
from replaygate.compare import compare_runs
from replaygate.model import CaseResult, Run
from replaygate.runfile import load_run

GATES = [{"metric": "quality.pass_rate", "max_decrease": 0.02}]
DECISION = {"mode": "significant", "confidence": 0.95, "holm": True}


def _project(tmp_path, llm_server, n, baseline, candidate, repeats=1):
    rows = [{"id": f"q{i:03d}", "input": f"Which colour is box {i}?", "expected": f"colour-{i}"} for i in range(n)]
    (tmp_path / "golden.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    llm_server.configure(answers={r["input"]: f"Box is {r['expected']}." for r in rows},
                         wrong_answer="No idea.", seed=11)
    cfg = tmp_path / "replaygate.yaml"
    cfg.write_text(f"""\
version: 1
dataset: [{{golden: golden.jsonl}}]
variants:
  baseline: {{model: "openai/{baseline}", api_base: "{llm_server.api_base}"}}
  candidate: {{model: "openai/{candidate}", api_base: "{llm_server.api_base}"}}
repeats: {repeats}
concurrency: 64
scorers: [{{name: correct, type: contains}}]
gates: {json.dumps(GATES)}
""")
    return cfg


def _repeat(run: Run, r: int) -> Run:
    """The r-th repeat of every case as a run of its own (an independent replay of the model)."""
    cases = [CaseResult(c.id, c.source, c.input, c.expected, [c.samples[r]]) for c in run.cases]
    return Run(variant=run.variant, cases=cases, scorers=run.scorers)


def test_noisy_model_against_itself_rarely_fails(tmp_path, llm_server):
    reps = 8
    cfg = _project(tmp_path, llm_server, 150, "noisy-10", "noisy-10", repeats=reps)
    r = CliRunner().invoke(cli, ["run", "-c", str(cfg), "--variant", "baseline", "-o", str(tmp_path / "b.json")])
    assert r.exit_code == 0, r.output
    run = load_run(tmp_path / "b.json")
    assert all(len(c.samples) == reps for c in run.cases)
    runs = [_repeat(run, i) for i in range(reps)]
    rates = [sum(s.scores["correct"].passed for c in x.cases for s in c.samples) / 150 for x in runs]
    assert 0.82 < sum(rates) / reps < 0.97  # the model really is noisy (~10% wrong per call)
    verdicts = [compare_runs(runs[i], runs[j], GATES, DECISION, seed=i * reps + j)["gates"][0]["verdict"]
                for i, j in itertools.permutations(range(reps), 2)]
    # 56 A/A comparisons of independent replays; nominal false-alarm rate 2.5% (about 1.4 expected)
    assert verdicts.count("fail") <= 5, verdicts.count("fail")


def test_ten_points_worse_is_caught(tmp_path, llm_server):
    cfg = _project(tmp_path, llm_server, 300, "noisy-5", "noisy-15")
    r = CliRunner().invoke(cli, ["gate", "-c", str(cfg), "--format", "json", "-o", str(tmp_path / "c.json")])
    assert r.exit_code == 1, r.output
    cmp = json.loads((tmp_path / "c.json").read_text())
    g = cmp["gates"][0]
    assert g["verdict"] == "fail" and g["ci"][1] < -0.02
    assert -0.16 < cmp["metrics"]["quality.pass_rate"]["delta"] < -0.04
