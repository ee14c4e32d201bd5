"""Re-record the quickstart's response cache (.replaygate/cache.sqlite).

The quickstart's two "models" are served by the test suite's local OpenAI-compatible server
(tests/fakeserver.py) on 127.0.0.1:4010: `support-large` answers every question from
answers.json; `support-small` is cheaper and faster but answers 15% of the questions (a fixed,
hash-chosen set) with a non-answer. The cache records those responses, with their measured
latency, so `replaygate gate --offline` reproduces the comparison without any server or key.

    python example-configs/quickstart/rebuild_cache.py
"""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "tests"))

from fakeserver import FakeServer  # noqa: E402


def main() -> int:
    cache = HERE / ".replaygate" / "cache.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(str(cache) + suffix).unlink(missing_ok=True)
    with FakeServer(port=4010) as srv:
        srv.configure(
            answers=json.loads((HERE / "answers.json").read_text()),
            wrong_answer="I'm not sure about that policy; please check our website.",
            aliases={"support-large": "answers@latency=140,jitter=60",
                     "support-small": "wrong-15@latency=80,jitter=40"},
        )
        env = dict(os.environ, QUICKSTART_API_KEY="not-a-real-key")
        rc = subprocess.call([sys.executable, "-m", "replaygate.cli", "-q", "gate",
                              "-c", str(HERE / "replaygate.yaml"), "--refresh"], env=env)
        print(f"gate exit code {rc}; server saw {srv.stats(summary=True)['count']} requests")
    with sqlite3.connect(cache) as db:  # fold the WAL into the file that gets committed
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.execute("PRAGMA journal_mode=DELETE")
    db.close()
    db = sqlite3.connect(cache)
    db.execute("VACUUM")
    db.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
