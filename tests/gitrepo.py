"""A throwaway git repository for tests (gitpython is a runtime dependency; the git CLI does
what a user's checkout would)."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.invalid", "GIT_CONFIG_NOSYSTEM": "1"}


def git(repo: Path, *args: str) -> str:
    r = subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                       env={**os.environ, **GIT_ENV, "HOME": str(repo.parent)})
    return r.stdout.strip()


def init_repo(repo: Path, branch: str = "main") -> Path:
    repo.mkdir(parents=True, exist_ok=True)
    git(repo, "init", "-q", "-b", branch)
    return repo


def commit_all(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", message)
    return git(repo, "rev-parse", "HEAD")


def as_ci_clone(origin: Path, dest: Path, branch: str) -> Path:
    """A clone with only `branch` checked out and the remote's main as origin/main, no local
    main: what actions/checkout leaves for a pull request."""
    subprocess.run(["git", "clone", "-q", "--no-local", str(origin), str(dest)], check=True,
                   capture_output=True, env={**os.environ, **GIT_ENV})
    git(dest, "checkout", "-q", "--detach", f"origin/{branch}")
    if git(dest, "branch", "--list", "main"):
        git(dest, "branch", "-q", "-D", "main")
    return dest
