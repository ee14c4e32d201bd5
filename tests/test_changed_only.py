"""gate --changed-only: skipped (exit 0, saying so) when nothing the gate reads changed."""
from __future__ import annotations

import json

from click.testing import CliRunner

from gitrepo import commit_all, git, init_repo
from replaygate.cli import cli


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def make(tmp_path, llm_server):
    repo = init_repo(tmp_path / "repo")
    d = repo / "llm"
    (d / "prompts").mkdir(parents=True)
    (d / "prompts" / "support.md").write_text("Be brief.")
    (d / "golden.jsonl").write_text("".join(json.dumps({"id": f"c{i}", "input": f"q {i}", "expected": f"q {i}"}) + "\n"
                                            for i in range(12)))
    (d / "replaygate.yaml").write_text(f"""\
version: 1
dataset: [{{golden: golden.jsonl}}]
variants:
  baseline: {{model: openai/echo, api_base: "{llm_server.api_base}"}}
  candidate: {{model: openai/echo, api_base: "{llm_server.api_base}", prompt: {{system: prompts/support.md}}}}
cache: false
scorers: [{{name: ok, type: contains}}]
gates: [{{metric: quality.pass_rate, max_decrease: 0.05}}]
""")
    (repo / "app.py").write_text("print('app')\n")
    commit_all(repo, "base")
    git(repo, "checkout", "-q", "-b", "feature")
    return repo, d / "replaygate.yaml"


def calls(llm_server) -> int:
    return sum(1 for r in llm_server.stats()["requests"] if r["path"].endswith("/chat/completions"))


def test_unrelated_change_skips_at_once(tmp_path, llm_server):
    repo, cfg = make(tmp_path, llm_server)
    (repo / "app.py").write_text("print('changed')\n")
    commit_all(repo, "code only")
    (repo / "notes.txt").write_text("untracked, unrelated")
    r = invoke("gate", "-c", cfg, "--changed-only", "--base", "main")
    assert r.exit_code == 0, r.output
    assert "nothing the gate reads changed since main" in r.output and "skipped" in r.output
    assert calls(llm_server) == 0


def test_each_kind_of_input_change_runs_the_gate(tmp_path, llm_server):
    repo, cfg = make(tmp_path, llm_server)
    for path, change in ((cfg.parent / "prompts" / "support.md", "committed"),
                         (cfg.parent / "golden.jsonl", "unstaged"),
                         (cfg, "staged")):
        git(repo, "checkout", "-q", ".")
        git(repo, "reset", "-q", "--hard", "main")
        extra = '{"id": "new", "input": "q new", "expected": "q new"}\n' if path.suffix == ".jsonl" else "\n"
        path.write_text(path.read_text() + extra)
        if change == "committed":
            commit_all(repo, "edit")
        elif change == "staged":
            git(repo, "add", str(path))
        llm_server.reset()
        r = invoke("gate", "-c", cfg, "--changed-only", "--base", "main")
        assert r.exit_code == 0, r.output
        assert "changed since main: " in r.output and path.name in r.output, r.output
        assert calls(llm_server) > 0, (path, change)


def test_untraceable_input_is_never_skipped_and_bad_base_is_exit_2(tmp_path, llm_server):
    repo, cfg = make(tmp_path, llm_server)
    cfg.write_text(cfg.read_text().replace('scorers: [{name: ok, type: contains}]',
                                           'scorers: [{name: ok, type: contains}, '
                                           '{name: mine, type: python, function: "json:dumps"}]'))
    commit_all(repo, "python scorer")
    from replaygate.changed import relevant_changes
    from replaygate.config import load_config

    ch = relevant_changes(load_config(cfg), "HEAD")
    assert ch.changed == [] and ch.untraceable == ["scorer mine imports json:dumps"] and ch.relevant
    r = invoke("gate", "-c", cfg, "--changed-only", "--base", "nope")
    assert r.exit_code == 2 and "unknown git ref 'nope'" in r.output
