"""Git access (the only module that imports git): commit metadata for run files."""
from __future__ import annotations

from pathlib import Path
from typing import Any


def repo_info(path: str | Path) -> dict[str, Any]:
    """Commit, branch and dirty flag of the repository holding `path`; {} outside a repo."""
    try:
        import git

        repo = git.Repo(path, search_parent_directories=True)
    except Exception:  # not a repo, or git missing: the run is still valid without it
        return {}
    info: dict[str, Any] = {}
    try:
        info["git_commit"] = repo.head.commit.hexsha
    except ValueError:  # a repository with no commit yet
        info["git_commit"] = None
    try:
        info["git_branch"] = repo.active_branch.name
    except TypeError:  # detached HEAD, as in most CI checkouts
        info["git_branch"] = None
    info["git_dirty"] = repo.is_dirty(untracked_files=False)
    return info
