"""Real disk faults for tests: a small file system that fills up, a read-only folder.

Both need a tmpfs mount, which needs root (CAP_SYS_ADMIN): CI runs as root. Elsewhere the
fixtures skip with the reason; a read-only folder falls back to chmod when not root (root
ignores permission bits, so chmod alone proves nothing there)."""
from __future__ import annotations

import os
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest


def _mount(*args: str) -> str | None:
    """None on success, else why not."""
    if shutil.which("mount") is None:
        return "no mount command"
    try:
        r = subprocess.run(["mount", *args], capture_output=True, text=True, timeout=30)
    except OSError as e:
        return str(e)
    return None if r.returncode == 0 else (r.stderr.strip() or f"mount exited {r.returncode}")


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)


@contextmanager
def small_disk(path: Path, size: str = "2m") -> Iterator[Path]:
    """A tmpfs of `size` mounted at `path` (created): writes beyond it fail with ENOSPC."""
    path.mkdir(parents=True, exist_ok=True)
    why = _mount("-t", "tmpfs", "-o", f"size={size},mode=0777", "tmpfs", str(path))
    if why:
        pytest.skip(f"cannot mount a {size} tmpfs to simulate a full disk (needs root): {why}")
    try:
        yield path
    finally:
        _umount(path)


def fill(path: Path) -> None:
    """Fill the file system holding `path` to the last byte."""
    for i, size in enumerate((65536, 4096, 512, 64, 1)):  # then the partial blocks left over
        try:
            with open(path / f"ballast{i}", "wb") as f:
                while True:
                    f.write(b"\0" * size)
                    f.flush()
        except OSError:
            pass


@contextmanager
def read_only(path: Path) -> Iterator[Path]:
    """Make the folder `path` (with what is in it) read-only until the block ends."""
    if os.geteuid() != 0:
        mode = path.stat().st_mode
        path.chmod(0o555)
        try:
            yield path
        finally:
            path.chmod(mode)
        return
    # root: a tmpfs over the folder, the files copied in, then remounted read-only
    keep = path.with_name(path.name + ".orig")
    shutil.copytree(path, keep)
    why = _mount("-t", "tmpfs", "-o", "size=64m", "tmpfs", str(path))
    if why:
        shutil.rmtree(keep)
        pytest.skip(f"cannot mount a tmpfs for a read-only folder (needs root): {why}")
    try:
        shutil.copytree(keep, path, dirs_exist_ok=True)
        why = _mount("-o", "remount,ro", str(path))
        if why:
            pytest.skip(f"cannot remount read-only: {why}")
        yield path
    finally:
        _umount(path)
        shutil.rmtree(keep, ignore_errors=True)


def run_doc(outputs: list[str], name: str = "v") -> dict:
    """A small valid run document whose samples answered `outputs` (one case each)."""
    from replaygate.metrics import summarize
    from replaygate.model import CaseResult, Run, Sample, Score, ScorerInfo

    cases = [CaseResult(id=f"c{i}", input=f"question {i}: {o}", expected="e",
                        samples=[Sample(output=o, latency_ms=10.0 + i, input_tokens=3, output_tokens=2,
                                        cost_usd=0.001, scores={"s": Score(1.0, True, f"ok {o}")})])
             for i, o in enumerate(outputs)]
    run = Run(variant={"name": name, "model": "openai/echo"}, cases=cases,
              scorers=[ScorerInfo(name="s", type="contains")])
    run.summary = summarize(run)
    return run.to_dict()
