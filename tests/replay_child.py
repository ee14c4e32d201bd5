"""A replay run in its own process, for the kill/interrupt tests (not a test module).

usage: python replay_child.py API_BASE CACHE N OUT.json
Writes the run JSON to OUT (complete or partial) and exits 0, or 3 when incomplete."""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from replaygate.errors import RunIncomplete  # noqa: E402
from replaygate.model import Run  # noqa: E402
from replaygate.replay.engine import replay_sync  # noqa: E402
from replay_helpers import make_cases, opts  # noqa: E402


def main() -> int:
    api_base, cache, n, out = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
    variants = {"v": {"model": "openai/echo@latency=100", "api_base": api_base}}
    options = opts(cache.parent, concurrency=4, cache_path=cache)
    complete, code = True, 0
    try:
        results = replay_sync(make_cases(n), variants, options)
    except RunIncomplete as e:
        results, complete, code = e.partial, False, e.exit_code
        print(f"incomplete: {e}", file=sys.stderr, flush=True)
    run = Run(variant=variants["v"], complete=complete, cases=results["v"])
    out.write_text(json.dumps(run.to_dict()))
    return code


if __name__ == "__main__":
    sys.exit(main())
