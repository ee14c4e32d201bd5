"""Re-record the committed response caches of the workflow examples (pr-gate, pre-merge,
nightly-model-upgrade) from the test suite's local OpenAI-compatible server (tests/fakeserver.py).

The examples name real models (openai/gpt-4o-mini, ...) with no api_base, as a user's config
would; while recording, OPENAI_BASE_URL points litellm at the local server, which plays each model
by an alias (see SCENARIOS). The cache key is the request (model, messages, params, api_base,
repeat), so the examples then run `--offline` with no server, no key and no network.

    python example-configs/rebuild_caches.py [pr-gate|pre-merge|nightly-model-upgrade ...]
"""
from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from fakeserver import FakeServer  # noqa: E402

WRONG = "I'm not sure about that policy; please check our website."
# per example: the model aliases the server plays, and the (baseline, candidate) models to record
SCENARIOS = {
    # the pull request switches to a cheaper model that answers a quarter of the questions wrongly
    "pr-gate": {"aliases": {"gpt-4o-mini": "answers@latency=60,jitter=30",
                            "gpt-4.1-nano": "wrong-25@latency=40,jitter=20"},
                "pairs": [("openai/gpt-4o-mini", "openai/gpt-4.1-nano")], "repeats": 1},
    "pre-merge": {"aliases": {"gpt-4o-mini": "answers@latency=60,jitter=30"},
                  "pairs": [("openai/gpt-4o-mini", "openai/gpt-4o-mini")], "repeats": 1},
    # the upgrade candidate still gets a fifth of the answers wrong; three repeats per case
    "nightly-model-upgrade": {"aliases": {"gpt-4o-mini": "answers@latency=60,jitter=30",
                                          "gpt-4.1-mini": "wrong-20@latency=50,jitter=30"},
                              "pairs": [("openai/gpt-4o-mini", "openai/gpt-4.1-mini")], "repeats": 3},
}


def recording_config(folder: Path, baseline: str, candidate: str) -> Path:
    """The example's config with both variants on plain files (no git refs) and the given models."""
    text = (folder / "replaygate.yaml").read_text()
    text = re.sub(r'"git:[^:]+:([^"]+)"', r"\1", text)
    text = re.sub(r"(\n  baseline:.*?\n    model: )\S+", rf"\g<1>{baseline}", text, count=1, flags=re.S)
    text = re.sub(r"(\n  candidate:.*?\n    model: )\S+", rf"\g<1>{candidate}", text, count=1, flags=re.S)
    text = re.sub(r"\nhistory: .*", "", text)
    path = folder / ".recording.yaml"
    path.write_text(text)
    return path


def compact(cache: Path) -> None:
    with sqlite3.connect(cache) as db:  # fold the WAL into the file that gets committed
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.execute("PRAGMA journal_mode=DELETE")
    db = sqlite3.connect(cache)
    db.execute("VACUUM")
    db.close()


def rebuild(name: str) -> int:
    folder = HERE / name
    scenario = SCENARIOS[name]
    cache = folder / ".replaygate" / "cache.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(str(cache) + suffix).unlink(missing_ok=True)
    answers = json.loads((HERE / "pr-gate" / "answers.json").read_text())
    with FakeServer() as srv:
        srv.configure(answers=answers, wrong_answer=WRONG, aliases=scenario["aliases"])
        env = dict(os.environ, OPENAI_API_KEY="not-a-real-key", OPENAI_BASE_URL=srv.api_base)
        worst = 0
        for baseline, candidate in scenario["pairs"]:
            cfg = recording_config(folder, baseline, candidate)
            try:
                rc = subprocess.call([sys.executable, "-m", "replaygate.cli", "-q", "gate", "-c", str(cfg),
                                      "--refresh", "--repeats", str(scenario["repeats"])], env=env)
            finally:
                cfg.unlink()
            print(f"{name}: {baseline} vs {candidate}: gate exit {rc}")
            worst = max(worst, rc if rc != 1 else 0)
        print(f"{name}: server saw {srv.stats(summary=True)['count']} requests")
    compact(cache)
    return worst


if __name__ == "__main__":
    names = sys.argv[1:] or list(SCENARIOS)
    sys.exit(max(rebuild(n) for n in names))
