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


def parse_git_spec(spec: str) -> tuple[str, str]:
    """'git:REF:path' -> (REF, path). A ref name cannot contain ':', so the first one splits."""
    body = spec[len("git:"):] if spec.startswith("git:") else spec
    ref, sep, rel = body.partition(":")
    if not sep or not ref or not rel:
        raise ValueError(f"expected git:REF:path, got {spec!r}")
    return ref, rel


def read_at_ref(spec: str, repo_dir: str | Path | None = None) -> str:
    """Text of the file named by ``git:REF:path`` as it is at REF, read from the object database
    (the work tree and index are not touched). ``path`` is relative to the repository root;
    the repository is the one holding ``repo_dir`` (default: the current directory).
    Raises ValueError with a readable message on a bad spec, unknown ref or missing file."""
    import git

    ref, rel = parse_git_spec(spec)
    try:
        repo = git.Repo(repo_dir or Path.cwd(), search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise ValueError(f"{spec}: {repo_dir or Path.cwd()} is not inside a git repository") from None
    try:
        commit = repo.commit(ref)
    except Exception:  # noqa: BLE001  gitpython raises BadName, ValueError, IndexError
        # (HEAD@{100} beyond the reflog), NotImplementedError (some @{...} forms), ...
        raise ValueError(f"{spec}: unknown git ref {ref!r}") from None
    try:
        blob = commit.tree / Path(rel).as_posix().lstrip("/")
    except KeyError:
        raise ValueError(f"{spec}: no file {rel!r} at {ref} ({commit.hexsha[:10]})") from None
    if blob.type != "blob":
        raise ValueError(f"{spec}: {rel!r} is not a file at {ref}")
    try:
        return blob.data_stream.read().decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{spec}: not UTF-8 text") from None
