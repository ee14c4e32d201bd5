"""The README's pre-commit snippet, run by pre-commit itself on a temporary repository: the hooks
of .pre-commit-hooks.yaml installed from a snapshot of this checkout (pre-commit builds their
environment with pip, constrained to requirements.lock), then a commit that touches nothing the
gate reads, one that changes the config (the gate runs offline from the cache and blocks the
regression), and a broken config (validate blocks it with file and line)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gitrepo import GIT_ENV, commit_all, git, init_repo

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "example-configs" / "quickstart"

pytestmark = pytest.mark.slow


def readme_snippet() -> str:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.S)
    return next(b for b in blocks if "id: replaygate-gate" in b and "repos:" in b)


def hook_repo(dest: Path) -> str:
    """This checkout's files (as they are now) committed to a fresh repository; its SHA."""
    init_repo(dest)
    for name in ("pyproject.toml", "README.md", "requirements.lock", ".pre-commit-hooks.yaml", "src"):
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(src, dest / name)
    return commit_all(dest, "snapshot")


def test_readme_precommit_snippet_with_precommit_itself(tmp_path):
    hooks = tmp_path / "replaygate-hooks"
    sha = hook_repo(hooks)
    repo = init_repo(tmp_path / "shop")
    shutil.copytree(QUICKSTART, repo, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.py", "answers.json"))
    snippet = readme_snippet()
    snippet = re.sub(r"repo: \S+", f"repo: {hooks}", snippet)
    snippet = re.sub(r"rev: \S+", f"rev: {sha}", snippet)
    (repo / ".pre-commit-config.yaml").write_text(snippet)
    (repo / "notes.txt").write_text("shop notes\n")
    commit_all(repo, "initial")
    env = {**os.environ, **GIT_ENV, "HOME": str(tmp_path), "PRE_COMMIT_HOME": str(tmp_path / "pc-home"),
           "PIP_CONSTRAINT": str(ROOT / "requirements.lock"), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    precommit = [sys.executable, "-m", "pre_commit"]

    def run() -> subprocess.CompletedProcess:
        return subprocess.run(precommit + ["run"], cwd=repo, env=env, capture_output=True, text=True, timeout=1200)

    # 1. an unrelated change: validate passes, the gate says nothing it reads changed
    (repo / "notes.txt").write_text("shop notes, edited\n")
    git(repo, "add", "notes.txt")
    r = run()
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"replaygate validate\.+Passed", r.stdout)
    assert re.search(r"replaygate gate \(changed prompts, offline\)\.+Passed", r.stdout)
    git(repo, "commit", "-qm", "notes", "--no-verify")

    # 2. the config changes: the gate runs offline from the committed cache and blocks the regression
    cfg = repo / "replaygate.yaml"
    cfg.write_text(cfg.read_text().replace('max_increase: "25%"', 'max_increase: "20%"'))
    git(repo, "add", "replaygate.yaml")
    r = run()
    assert r.returncode == 1, r.stdout + r.stderr
    assert re.search(r"replaygate gate \(changed prompts, offline\)\.+Failed", r.stdout)
    assert "- exit code: 1" in r.stdout and "Verdict: FAIL (exit 1)" in r.stdout
    assert "changed since HEAD: replaygate.yaml" in r.stdout

    # 3. a broken config: validate blocks it with the file and the line
    cfg.write_text(cfg.read_text().replace("concurrency: 8", "concurency: 8"))
    git(repo, "add", "replaygate.yaml")
    r = run()
    assert r.returncode == 1
    assert re.search(r"replaygate validate\.+Failed", r.stdout)
    assert re.search(r"replaygate\.yaml:\d+: concurency", r.stdout), r.stdout
