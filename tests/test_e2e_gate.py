"""End to end through the CLI against the local server: plant a regression, catch it; an
identical candidate passes; runs, compare, reports and the offline cache agree."""
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from replaygate.cli import cli
from replaygate.config import schema_errors

N = 300
REPO = Path(__file__).resolve().parents[1]


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture
def project(tmp_path, llm_server):
    rows = [{"id": f"q{i:03d}", "input": f"What is the code word for item {i}?", "expected": f"word-{i}"}
            for i in range(N)]
    (tmp_path / "golden.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    llm_server.configure(answers={r["input"]: f"The code word is {r['expected']}." for r in rows},
                         wrong_answer="I do not know.")

    def write(candidate_model: str, extra: str = "") -> Path:
        cfg = tmp_path / "replaygate.yaml"
        cfg.write_text(f"""\
version: 1
dataset: [{{golden: golden.jsonl}}]
variants:
  baseline: {{model: openai/answers, api_base: "{llm_server.api_base}", price: {{input: 1, output: 2}}}}
  candidate: {{model: "openai/{candidate_model}", api_base: "{llm_server.api_base}", price: {{input: 1, output: 2}}}}
concurrency: 32
scorers:
  - {{name: correct, type: contains}}
gates:
  - {{metric: quality.pass_rate, max_decrease: 0.02}}
  - {{metric: errors.rate, max: 0.05}}
{extra}""")
        return cfg

    return write


def test_planted_regression_fails_the_gate(project, tmp_path):
    cfg = project("wrong-15")
    r = invoke("gate", "-c", cfg, "--save-runs", tmp_path / "runs")
    assert r.exit_code == 1, r.output
    assert "1 of 2 gates failed: quality.pass_rate" in r.output
    gate_line = next(line for line in r.output.splitlines() if line.startswith("quality.pass_rate max_decrease"))
    assert gate_line.rstrip().endswith("FAIL")
    # the run files are valid, complete, and compare to the same verdict offline
    for name in ("baseline", "candidate"):
        doc = json.loads((tmp_path / "runs" / f"{name}.json").read_text())
        assert schema_errors(doc, "run.schema.json") == [] and doc["complete"] is True
        assert len(doc["cases"]) == N
    r2 = invoke("compare", tmp_path / "runs/baseline.json", tmp_path / "runs/candidate.json", "-c", cfg,
                "--format", "json", "-o", tmp_path / "cmp.json")
    assert r2.exit_code == 1
    cmp = json.loads((tmp_path / "cmp.json").read_text())
    assert schema_errors(cmp, "comparison.schema.json") == []
    pr = cmp["metrics"]["quality.pass_rate"]
    assert pr["baseline"] == 1.0 and 0.10 < -pr["delta"] < 0.20 and pr["ci"][1] < -0.02
    assert cmp["n_regressions"] == round(-pr["delta"] * N)


def test_identical_candidate_passes_and_cache_replays_offline(project, llm_server, tmp_path):
    cfg = project("answers")
    r = invoke("gate", "-c", cfg)
    assert r.exit_code == 0, r.output
    assert "all 2 gates passed" in r.output or "no gate failed" in r.output
    calls = llm_server.stats(summary=True)["count"]
    # a rerun offline is served entirely from the cache: no request reaches the server
    r = invoke("gate", "-c", cfg, "--offline", "--format", "md")
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("## replaygate: ✅ pass")
    assert llm_server.stats(summary=True)["count"] == calls


def test_offline_cache_miss_is_exit_3(project, tmp_path):
    cfg = project("answers")
    r = invoke("run", "-c", cfg, "--variant", "candidate", "--offline", "-o", tmp_path / "run.json")
    assert r.exit_code == 3
    assert "CacheMiss" in r.output or "cache" in r.output.lower()
    partial = json.loads((tmp_path / "run.json").read_text())
    assert partial["complete"] is False


def test_run_reports_in_every_format(project, tmp_path):
    cfg = project("wrong-15")
    run = tmp_path / "cand.json"
    r = invoke("run", "-c", cfg, "--variant", "candidate", "-o", run)
    assert r.exit_code == 0, r.output  # scores do not decide a run's exit code
    doc = json.loads(run.read_text())
    assert 0.80 <= doc["summary"]["quality.pass_rate"] <= 0.90
    assert doc["summary"]["cost.mean"] > 0 and doc["variant"]["name"] == "candidate"
    for fmt in ("table", "md", "junit", "json"):
        out = invoke("report", run, "--format", fmt)
        assert out.exit_code == 0, out.output
    junit = invoke("report", run, "--format", "junit").output
    assert f'tests="{N}"' in junit and 'failures="0"' not in junit


def test_unknown_price_is_null_not_zero(project, tmp_path):
    cfg = project("answers")
    text = cfg.read_text().replace(', price: {input: 1, output: 2}}\nconcurrency', '}\nconcurrency')
    assert text != cfg.read_text()
    cfg.write_text(text)
    r = invoke("run", "-c", cfg, "--variant", "candidate", "-o", tmp_path / "r.json")
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["summary"]["cost.mean"] is None
    assert all(s["cost_usd"] is None for c in doc["cases"] for s in c["samples"])
    assert any("price" in w.lower() for w in doc["warnings"])


def test_quickstart_runs_offline_from_committed_cache(tmp_path):
    src = REPO / "example-configs" / "quickstart"
    dst = tmp_path / "quickstart"
    shutil.copytree(src, dst)  # never write into the repo's cache
    cache = dst / ".replaygate" / "cache.sqlite"
    before = cache.read_bytes()
    r = invoke("gate", "-c", dst / "replaygate.yaml", "--offline")
    assert r.exit_code == 1, r.output
    assert "gates failed: quality.pass_rate" in r.output
    # --offline only reads: a cache committed to git stays byte-identical, no WAL files appear
    assert cache.read_bytes() == before
    assert sorted(p.name for p in cache.parent.iterdir()) == ["cache.sqlite"]


def test_calibrate_measures_noise_of_a_noisy_baseline(project, llm_server, tmp_path):
    cfg = project("answers")
    text = cfg.read_text().replace("model: openai/answers,", "model: openai/noisy-10,")
    cfg.write_text(text)
    llm_server.configure(seed=3)
    r = invoke("calibrate", "-c", cfg, "--format", "json", "-o", tmp_path / "cal.json")
    assert r.exit_code == 0, r.output
    cal = json.loads((tmp_path / "cal.json").read_text())
    assert cal["n_cases"] == N and cal["repeats"] == 1 and "even vs odd" in cal["source"]
    flip = cal["noise"]["quality.pass_rate"]["flip_rate"]
    assert 0.10 < flip < 0.27  # two independent 10% error draws disagree 18% of the time
    rec = {g["metric"]: g for g in cal["recommendations"]}
    assert "quality.pass_rate" in rec
    # a recorded or stored baseline never varies: calibrating it is refused with a clear message
    r = invoke("calibrate", "-c", cfg, "--variant", "nope")
    assert r.exit_code == 2 and "no variant named 'nope'" in r.output


def test_pairwise_judge_win_rate_is_a_gateable_paired_metric(project, llm_server, tmp_path):
    cfg = project("wrong-15")
    text = cfg.read_text().replace(
        "scorers:\n",
        f'scorers:\n  - {{name: pref, type: pairwise, model: openai/judge, api_base: "{llm_server.api_base}"}}\n'
    ).replace("gates:\n", "gates:\n  - {metric: pairwise.pref.win_rate, min: 0.47}\n")
    cfg.write_text(text)
    r = invoke("gate", "-c", cfg, "--format", "json", "-o", tmp_path / "cmp.json", "--save-runs", tmp_path / "runs")
    assert r.exit_code == 1, r.output
    cmp = json.loads((tmp_path / "cmp.json").read_text())
    win = cmp["metrics"]["pairwise.pref.win_rate"]
    # the judge prefers the answer naming the code word: baseline wins the ~15% wrong cases, ties elsewhere
    assert 0.39 < win["candidate"] < 0.46 and win["baseline"] == 0.5  # 0.5 = no preference
    gate = next(g for g in cmp["gates"] if g["metric"] == "pairwise.pref.win_rate")
    assert gate["verdict"] == "fail" and gate["ci"][1] < 0.47
    cand = json.loads((tmp_path / "runs/candidate.json").read_text())
    # identical answers tie without a call; every differing pair is judged in both orders
    assert cand["judge_usage"]["pref"]["calls"] == 2 * cmp["n_regressions"]
    assert "score.pref.mean" not in cand["summary"]
    # the judgments are stored on the candidate run: comparing the saved runs gates them again
    r2 = invoke("compare", tmp_path / "runs/baseline.json", tmp_path / "runs/candidate.json", "-c", cfg,
                "--format", "json", "-o", tmp_path / "cmp2.json")
    assert r2.exit_code == 1
    again = json.loads((tmp_path / "cmp2.json").read_text())["metrics"]["pairwise.pref.win_rate"]
    assert again["candidate"] == win["candidate"] and again["ci"] == win["ci"]


def test_git_prompt_resolved_from_the_config_repo_from_any_cwd(tmp_path, llm_server, monkeypatch):
    import git

    repo_dir = tmp_path / "repo"
    (repo_dir / "prompts").mkdir(parents=True)
    repo = git.Repo.init(repo_dir)
    (repo_dir / "prompts/system.md").write_text("Committed prompt.")
    repo.index.add(["prompts/system.md"])
    repo.index.commit("prompt v1")
    (repo_dir / "prompts/system.md").write_text("Uncommitted edit.")  # the work tree differs
    (repo_dir / "golden.jsonl").write_text('{"id": "a", "input": "hi", "expected": "hi"}\n')
    (repo_dir / "replaygate.yaml").write_text(f"""\
version: 1
dataset: [{{golden: golden.jsonl}}]
variants:
  candidate: {{model: openai/echo, api_base: "{llm_server.api_base}", prompt: {{system: "git:HEAD:prompts/system.md"}}}}
scorers: [{{name: ok, type: contains}}]
""")
    monkeypatch.chdir(tmp_path)  # outside the repository
    r = invoke("run", "-c", repo_dir / "replaygate.yaml", "--variant", "candidate", "-o", tmp_path / "r.json",
               "--no-cache")
    assert r.exit_code == 0, r.output
    bodies = [q["body"] for q in llm_server.stats()["requests"] if q["prompt"] == "hi"]
    assert bodies and bodies[0]["messages"][0] == {"role": "system", "content": "Committed prompt."}
    run = json.loads((tmp_path / "r.json").read_text())
    assert "base_dir" not in run["variant"]


def test_api_key_never_lands_in_cache_runs_reports_or_output(project, tmp_path, monkeypatch):
    secret = "sk-live-DO-NOT-LEAK-4242"
    monkeypatch.setenv("RG_E2E_KEY", secret)
    cfg = project("wrong-15")
    cfg.write_text(cfg.read_text().replace('price: {input: 1, output: 2}}',
                                           'price: {input: 1, output: 2}, api_key_env: RG_E2E_KEY}'))
    assert cfg.read_text().count("RG_E2E_KEY") == 2
    outputs = []
    r = CliRunner().invoke(cli, ["-v", "gate", "-c", str(cfg), "--save-runs", str(tmp_path / "runs")])
    assert r.exit_code == 1, r.output
    outputs.append(r.output)
    for fmt in ("md", "junit", "json"):
        r = invoke("compare", tmp_path / "runs/baseline.json", tmp_path / "runs/candidate.json", "-c", cfg,
                   "--format", fmt)
        outputs.append(r.output)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "cache.sqlite" for p in files)
    for p in files:
        assert secret.encode() not in p.read_bytes(), p
    for text in outputs:
        assert secret not in text
