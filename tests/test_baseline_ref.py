"""gate --baseline-ref: the baseline is the candidate as it was at a git ref; git: paths are
relative to the config's folder; `main` falls back to origin/main; runs store commit SHAs."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from gitrepo import as_ci_clone, commit_all, git, init_repo
from replaygate.cli import cli
from replaygate.vcs import read_at_ref, resolve_commit


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def write_project(root: Path, api_base: str, prompt: str) -> Path:
    """A config in a sub-folder (so folder-relative and root-relative paths differ)."""
    d = root / "llm"
    (d / "prompts").mkdir(parents=True, exist_ok=True)
    (d / "prompts" / "support.md").write_text(prompt)
    (d / "golden.jsonl").write_text("".join(json.dumps({"id": f"c{i}", "input": f"question {i}",
                                                        "expected": f"question {i}"}) + "\n" for i in range(12)))
    (d / "replaygate.yaml").write_text(f"""\
version: 1
dataset: [{{golden: golden.jsonl}}]
variants:
  baseline: {{recorded: true}}
  candidate:
    model: openai/echo
    api_base: "{api_base}"
    prompt: {{system: prompts/support.md}}
cache: false
scorers: [{{name: ok, type: contains}}]
gates: [{{metric: quality.pass_rate, max_decrease: 0.05}}]
""")
    return d / "replaygate.yaml"


def system_prompts(llm_server) -> set[str]:
    return {r["body"]["messages"][0]["content"] for r in llm_server.stats()["requests"]
            if r["path"].endswith("/chat/completions") and r["prompt"] != "replaygate warm-up"}


@pytest.fixture
def origin(tmp_path, llm_server):
    repo = init_repo(tmp_path / "origin")
    write_project(repo, llm_server.api_base, "You are the MAIN prompt.")
    main_sha = commit_all(repo, "main prompt")
    git(repo, "checkout", "-q", "-b", "feature")
    (repo / "llm" / "prompts" / "support.md").write_text("You are the FEATURE prompt.")
    feature_sha = commit_all(repo, "feature prompt")
    git(repo, "checkout", "-q", "main")
    return repo, main_sha, feature_sha


def test_baseline_ref_reads_prompt_and_config_at_ref_and_records_both_shas(tmp_path, origin, llm_server):
    repo, main_sha, feature_sha = origin
    clone = as_ci_clone(repo, tmp_path / "ci", "feature")
    cfg = clone / "llm" / "replaygate.yaml"
    out = tmp_path / "runs"
    r = invoke("gate", "-c", cfg, "--baseline-ref", "main", "--save-runs", out, "--format", "json",
               "-o", out / "comparison.json")
    assert r.exit_code == 0, r.output
    # the baseline is the candidate variant at main (a model call with main's prompt), not `recorded`
    assert system_prompts(llm_server) == {"You are the MAIN prompt.", "You are the FEATURE prompt."}
    base = json.loads((out / "baseline.json").read_text())
    cand = json.loads((out / "candidate.json").read_text())
    assert base["environment"]["git_commit"] == main_sha and base["environment"]["git_ref"] == "main"
    assert cand["environment"]["git_commit"] == feature_sha
    assert base["variant"]["model"] == "openai/echo"
    assert base["variant"]["prompt"]["system"] == f"git:{main_sha}:/llm/prompts/support.md"
    doc = json.loads((out / "comparison.json").read_text())
    assert doc["n_paired"] == 12
    assert "did not exist" not in r.output and "variant 'candidate' of llm/replaygate.yaml at origin/main" in r.output


def test_config_new_on_the_branch_lends_its_candidate_with_files_at_ref(tmp_path, llm_server):
    repo = init_repo(tmp_path / "repo")
    (repo / "llm" / "prompts").mkdir(parents=True)
    (repo / "llm" / "prompts" / "support.md").write_text("Old prompt.")
    (repo / "README").write_text("x")
    main_sha = commit_all(repo, "prompt only")
    cfg = write_project(repo, llm_server.api_base, "New prompt.")  # config added, prompt edited, uncommitted
    r = invoke("gate", "-c", cfg, "--baseline-ref", "main")
    assert r.exit_code == 0, r.output
    assert "did not exist at main" in r.output
    assert system_prompts(llm_server) == {"Old prompt.", "New prompt."}
    assert main_sha


def test_baseline_ref_errors_are_clear_exit_2(tmp_path, origin):
    repo, *_ = origin
    cfg = repo / "llm" / "replaygate.yaml"
    r = invoke("gate", "-c", cfg, "--baseline-ref", "no-such-branch")
    assert r.exit_code == 2
    assert "unknown git ref 'no-such-branch' (tried no-such-branch, origin/no-such-branch)" in r.output
    assert "Traceback" not in r.output
    text = cfg.read_text()
    cfg.write_text(text[:text.index("  candidate:")] + "  candidate: {recorded: true}\ncache: false\n"
                   + text[text.index("scorers:"):])
    commit_all(repo, "recorded candidate")
    r = invoke("gate", "-c", cfg, "--baseline-ref", "HEAD")
    assert r.exit_code == 2 and "variant 'candidate' is a recorded variant" in r.output, r.output


def test_git_paths_are_relative_to_the_config_folder_or_the_root_with_a_slash(origin):
    repo, main_sha, feature_sha = origin
    llm = repo / "llm"
    assert read_at_ref("git:feature:prompts/support.md", llm) == "You are the FEATURE prompt."
    assert read_at_ref("git:feature:/llm/prompts/support.md", repo / "llm" / "prompts") == "You are the FEATURE prompt."
    assert read_at_ref("git:main:../llm/prompts/support.md", llm) == "You are the MAIN prompt."
    with pytest.raises(ValueError, match="no file 'llm/llm/prompts/support.md' at main .*git:REF:/PATH"):
        read_at_ref("git:main:llm/prompts/support.md", llm)
    with pytest.raises(ValueError, match="outside the repository"):
        read_at_ref("git:main:../../etc/passwd", llm)


def test_main_falls_back_to_origin_main_in_a_ci_checkout(tmp_path, origin):
    repo, main_sha, _ = origin
    clone = as_ci_clone(repo, tmp_path / "ci", "feature")
    assert resolve_commit("main", clone) == (main_sha, "origin/main")
    assert resolve_commit("origin/main", clone) == (main_sha, "origin/main")
    assert read_at_ref("git:main:prompts/support.md", clone / "llm") == "You are the MAIN prompt."


def test_run_file_stores_the_sha_not_the_moving_ref(tmp_path, origin, llm_server):
    repo, main_sha, _ = origin
    cfg = repo / "llm" / "replaygate.yaml"
    cfg.write_text(cfg.read_text().replace("prompt: {system: prompts/support.md}",
                                           "prompt: {system: \"git:feature:prompts/support.md\"}"))
    r = invoke("run", "-c", cfg, "--variant", "candidate", "-o", tmp_path / "run.json")
    assert r.exit_code == 0, r.output
    run = json.loads((tmp_path / "run.json").read_text())
    feature_sha = git(repo, "rev-parse", "feature")
    assert run["variant"]["prompt"]["system"] == f"git:{feature_sha}:/llm/prompts/support.md"
    assert run["variant"]["git_refs"] == {"feature": feature_sha}
    assert system_prompts(llm_server) == {"You are the FEATURE prompt."}
