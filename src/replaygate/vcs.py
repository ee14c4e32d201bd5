"""Git access (the only module that imports git): commit metadata for run files, files as they
are at a ref (prompts, templates, the config itself for `gate --baseline-ref`), and the files a
branch changed (`gate --changed-only`).

Paths in ``git:REF:path`` are relative to the folder of the config that names them, like every
other path in a config; ``git:REF:/path`` is relative to the repository root. A ref that does not
resolve is retried as ``origin/REF`` (CI checkouts often have only the remote-tracking branch).
"""
from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
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


def _repo(where: str | Path | None):
    import git

    start = Path(where or Path.cwd())
    try:
        return git.Repo(start, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise ValueError(f"{start} is not inside a git repository") from None


def _root(repo) -> Path:
    return Path(repo.working_tree_dir).resolve()


def resolve_commit(ref: str, where: str | Path | None = None) -> tuple[str, str]:
    """(full SHA, the ref name that resolved) for `ref` in the repository holding `where`.
    `main` falls back to `origin/main` when there is no local branch of that name, as in a CI
    checkout. Raises ValueError naming what was tried and how to get the ref."""
    repo = _repo(where)
    tried = [ref]
    if not ref.startswith(("origin/", "refs/")) and not _looks_like_sha(ref):
        tried.append(f"origin/{ref}")
    for name in tried:
        try:
            return repo.commit(name).hexsha, name
        except Exception:  # noqa: BLE001  gitpython raises BadName, ValueError, IndexError
            continue  # (HEAD@{100} beyond the reflog), NotImplementedError (some @{...} forms), ...
    shallow = (Path(repo.git_dir) / "shallow").exists()
    hint = (" The checkout is shallow: fetch the ref first (actions/checkout with fetch-depth: 0, or "
            f"git fetch origin {ref.removeprefix('origin/')})" if shallow else
            f" (fetch it first: git fetch origin {ref.removeprefix('origin/')})")
    raise ValueError(f"unknown git ref {ref!r} (tried {', '.join(tried)}).{hint}")


def _looks_like_sha(ref: str) -> bool:
    return 7 <= len(ref) <= 40 and all(c in "0123456789abcdef" for c in ref.lower())


def repo_path(rel: str, base_dir: str | Path | None, repo) -> str:
    """The repository-relative POSIX path of `rel`: from the root when it starts with '/', else
    from `base_dir` (the config's folder). Refuses paths that leave the repository."""
    root = _root(repo)
    if rel.startswith("/"):
        target = PurePosixPath(rel.lstrip("/"))
        parts = target.parts
    else:
        base = Path(base_dir or Path.cwd()).resolve()
        joined = os.path.normpath(base / rel)
        try:
            parts = Path(joined).relative_to(root).parts
        except ValueError:
            raise ValueError(f"{rel!r} is outside the repository at {root}") from None
    if ".." in parts:
        raise ValueError(f"{rel!r} is outside the repository at {root}")
    return PurePosixPath(*parts).as_posix()


def read_at_ref(spec: str, base_dir: str | Path | None = None) -> str:
    """Text of the file named by ``git:REF:path`` as it is at REF, read from the object database
    (the work tree and index are not touched). ``path`` is relative to ``base_dir`` (the config's
    folder; default the current directory), or to the repository root when it starts with '/'.
    Raises ValueError with a readable message on a bad spec, unknown ref or missing file."""
    ref, rel = parse_git_spec(spec)
    try:
        repo = _repo(base_dir)
        sha, used = resolve_commit(ref, base_dir)
        path = repo_path(rel, base_dir, repo)
    except ValueError as e:
        raise ValueError(f"{spec}: {e}") from None
    text = file_at_commit(repo, sha, path)
    if text is None:
        where = "from the repository root" if rel.startswith("/") else \
            f"relative to {base_dir or Path.cwd()} (write git:REF:/PATH for a path from the repository root)"
        raise ValueError(f"{spec}: no file {path!r} at {used} ({sha[:10]}); paths are {where}")
    return text


def file_at_commit(repo, sha: str, path: str) -> str | None:
    """UTF-8 text of the repository-relative `path` at commit `sha`; None when it is not there."""
    commit = repo.commit(sha)
    try:
        blob = commit.tree / path
    except KeyError:
        return None
    if blob.type != "blob":
        return None
    try:
        return blob.data_stream.read().decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{path} at {sha[:10]}: not UTF-8 text") from None


def pin_spec(spec: str, base_dir: str | Path | None) -> tuple[str, str, str]:
    """``git:REF:path`` -> (``git:SHA:/repo-path``, REF, SHA): the spec as a run file stores it, so
    the run names exactly what was read even after the branch moves."""
    ref, rel = parse_git_spec(spec)
    repo = _repo(base_dir)
    sha, _ = resolve_commit(ref, base_dir)
    return f"git:{sha}:/{repo_path(rel, base_dir, repo)}", ref, sha


def config_at_ref(config_path: str | Path, ref: str) -> tuple[str | None, str, str, Path]:
    """The config file's text at `ref` (None when it did not exist there), the resolved SHA,
    the ref name that resolved, and the repository root."""
    config_path = Path(config_path).resolve()
    repo = _repo(config_path.parent)
    sha, used = resolve_commit(ref, config_path.parent)
    try:
        rel = config_path.relative_to(_root(repo)).as_posix()
    except ValueError:
        raise ValueError(f"{config_path} is outside the repository at {_root(repo)}") from None
    return file_at_commit(repo, sha, rel), sha, used, _root(repo)


def changed_files(base: str, where: str | Path | None = None) -> tuple[set[Path], str]:
    """Absolute paths that differ between the merge base of `base` and HEAD and the work tree
    (committed, staged, unstaged and untracked changes), and the merge base's SHA."""
    repo = _repo(where)
    sha, _ = resolve_commit(base, where)
    head = repo.head.commit.hexsha
    merge_base = repo.git.merge_base(sha, head).strip() or sha
    root = _root(repo)
    names = repo.git.diff("--name-only", "--no-renames", merge_base).splitlines()
    names += repo.git.ls_files("--others", "--exclude-standard").splitlines()
    return {(root / n).resolve() for n in names if n.strip()}, merge_base


def repo_path_of(path: str | Path) -> str:
    """`path` relative to the root of the repository holding it (POSIX); as given outside one."""
    p = Path(path).resolve()
    try:
        return p.relative_to(_root(_repo(p.parent))).as_posix()
    except ValueError:
        return Path(path).as_posix()
