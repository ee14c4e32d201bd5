"""example-configs/pre-merge: `make check` in a fresh repository copied from the example, offline
from the committed cache: skipped when nothing the gate reads changed, a real gate when the
config changed, and a prompt edit whose answers are not cached fails closed (exit 3)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gitrepo import GIT_ENV, commit_all, git, init_repo

EXAMPLE = Path(__file__).resolve().parents[1] / "example-configs" / "pre-merge"


def make_check(repo: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, **GIT_ENV, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("OPENAI_API_KEY", None)
    return subprocess.run(["make", "-s", "check"], cwd=repo, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_check_skips_gates_and_fails_closed(tmp_path):
    repo = init_repo(tmp_path / "shop")
    shutil.copytree(EXAMPLE, repo, dirs_exist_ok=True)
    commit_all(repo, "pre-merge check")
    git(repo, "checkout", "-q", "-b", "tweak")

    r = make_check(repo)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "valid (2 variants" in r.stdout and "nothing the gate reads changed since main" in r.stderr

    cfg = repo / "replaygate.yaml"
    cfg.write_text(cfg.read_text().replace("max_decrease: 0.02", "max_decrease: 0.01"))
    r = make_check(repo)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "changed since main: replaygate.yaml" in r.stderr
    # identical answers on both sides; 40 cases cannot prove a 1-point tolerance: undecided, exit 0
    assert "Compared 40 paired cases" in r.stdout and "(exit 0)" in r.stdout

    prompt = repo / "prompts" / "support.md"
    prompt.write_text(prompt.read_text() + "Always greet the customer.\n")
    r = make_check(repo)
    assert r.returncode != 0
    assert "offline" in r.stderr and "Traceback" not in r.stderr
