"""Writing files so that a reader never sees half of one, and a failure names the file.

Every output replaygate writes (run and comparison JSON, reports, ``import`` cases, ``init``)
goes through ``write_atomic`` / ``atomic_open``: the bytes go to a temporary file in the same
folder, are flushed and fsync'ed, and the temporary file is renamed over the target. A full
disk, a read-only folder or a kill leaves the previous file as it was and no temporary file
behind; an ``-o`` report is never truncated to 0 bytes.

An ``OSError`` becomes a ``ReplaygateError`` that names the file and what to do (``io_error``):
exit 2 when the path itself is unusable (a folder, no permission, read-only file system), exit 3
when the disk failed under a valid path (no space, quota, I/O error).
"""
from __future__ import annotations

import errno
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

from .errors import InputError, ReplaygateError, RunIncomplete

# the path the user gave cannot be written, whatever the disk's state: fix the path (exit 2)
_PATH_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.EISDIR, errno.ENOTDIR, errno.ENOENT,
                errno.ENAMETOOLONG, errno.ELOOP, errno.EEXIST, errno.EINVAL}
_HINTS = {
    errno.ENOSPC: "the disk is full: free space or write somewhere else",
    errno.EDQUOT: "the disk quota is exceeded: free space or write somewhere else",
    errno.EROFS: "the file system is read-only: write somewhere else",
    errno.EACCES: "permission denied: write somewhere else or fix the permissions",
    errno.EPERM: "not permitted: write somewhere else or fix the permissions",
    errno.EISDIR: "a folder is in the way: remove it or write somewhere else",
    errno.ENOTDIR: "a file is in the way of the folder: write somewhere else",
}


def io_error(e: OSError, path: str | os.PathLike, what: str = "file", action: str = "write") -> ReplaygateError:
    """The error to raise for an OSError on `path`, with a message saying what to do."""
    hint = _HINTS.get(e.errno) if e.errno is not None else None
    reason = hint or (e.strerror or str(e))
    cls = InputError if e.errno in _PATH_ERRNOS else RunIncomplete
    return cls(f"cannot {action} {what}: {reason}", file=os.fspath(path))


def _mode_for(path: Path) -> int:
    """An existing file keeps its permission bits; a new one gets the usual 0666 & ~umask
    (mkstemp's 0600 would make a report unreadable to others)."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        mask = os.umask(0)
        os.umask(mask)
        return 0o666 & ~mask


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems cannot sync a folder; the rename itself is still atomic
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", *, what: str = "file",
                encoding: str = "utf-8", errors: str = "backslashreplace") -> Iterator[IO]:
    """Open a temporary file beside `path` for writing; on a clean exit it is flushed, fsync'ed
    and renamed over `path`; on an error it is removed and `path` is left untouched.

    Text that cannot be encoded (a lone surrogate from a model's answer) is written as a
    ``\\udXXX`` escape instead of failing half-way (``errors``)."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes whole files: mode 'w' or 'wb', not {mode!r}")
    if os.path.exists(path) and not os.path.isfile(path) and not os.path.isdir(path):
        # a pipe or device (-o /dev/stdout, /dev/null): nothing to rename over, write through
        with _direct(path, mode, what, encoding, errors) as fh:
            yield fh
        return
    target = Path(os.path.realpath(path))  # a symlinked output is written where the link points
    folder = target.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if target.is_dir():
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(target))
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as e:
        raise io_error(e, path, what) from None
    try:
        try:
            os.fchmod(fd, _mode_for(target))
            fh = (os.fdopen(fd, "wb") if mode == "wb"
                  else os.fdopen(fd, "w", encoding=encoding, errors=errors, newline=""))
        except BaseException:
            os.close(fd)
            raise
        with fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except OSError as e:
        _remove(tmp)
        raise io_error(e, path, what) from None
    except BaseException:
        _remove(tmp)
        raise
    _fsync_dir(folder)


@contextmanager
def _direct(path, mode: str, what: str, encoding: str, errors: str) -> Iterator[IO]:
    try:
        fh = open(path, mode) if mode == "wb" else open(path, mode, encoding=encoding, errors=errors)
    except OSError as e:
        raise io_error(e, path, what) from None
    with fh:
        yield fh


def write_atomic(path: str | os.PathLike, data: str | bytes, *, what: str = "file") -> None:
    """Write `data` (text as UTF-8) to `path` atomically: all of it or, on failure, nothing."""
    with atomic_open(path, "wb" if isinstance(data, bytes) else "w", what=what) as fh:
        fh.write(data)


def check_writable(path: str | os.PathLike, *, what: str = "file") -> None:
    """Fail now, before any paid call, when `path` could not be written later: its folder cannot
    be created or written, or a folder stands where the file should be. (A full disk can only
    be found by writing.)"""
    if os.path.exists(path) and not os.path.isfile(path) and not os.path.isdir(path):
        return  # a pipe or device (-o /dev/stdout): written through, nothing to check
    target = Path(os.path.realpath(path))
    folder = target.parent
    try:
        if target.is_dir():
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(target))
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as e:
        raise io_error(e, path, what) from None
    os.close(fd)
    _remove(tmp)


def escape_surrogates(json_text: str) -> str:
    """`json_text` with each lone surrogate written as its JSON escape. Surrogates only occur
    inside JSON strings, where a backslash of the text itself is already escaped, so the
    result is the same JSON value."""
    try:
        json_text.encode("utf-8")
        return json_text
    except UnicodeEncodeError:
        return json_text.encode("utf-8", "backslashreplace").decode("utf-8")


def _remove(tmp: str) -> None:
    try:
        os.unlink(tmp)
    except OSError:
        pass
