"""Regenerate the real-emitter trace corpus (tests/corpus/captures/): see tests/corpus/README.md.

Each emitter group gets a throwaway venv (or node_modules folder) with its PINNED packages, the
local fake server (tests/fakeserver.py) answers the calls, and the OTLP the real exporter sends
is recorded by replaygate's own receiver (``replaygate record``'s code) into
``captures/<emitter>.jsonl``. Nothing here reaches the network except the package registries
for the installs.

    python tests/corpus/capture.py                    # every emitter
    python tests/corpus/capture.py --only langfuse    # some (comma-separated names)
    python tests/corpus/capture.py --list
    python tests/corpus/capture.py --pin langfuse=langfuse==5.3.0   # try a newer version

Run it with the project's venv active (it imports replaygate and tests/fakeserver.py). After a
re-capture, ``pytest tests/test_corpus.py`` says what changed; update the expectations there and
the versions in the README together.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests/: fakeserver

from fakeserver import FakeServer  # noqa: E402

from replaygate.sources.receiver import running_receiver  # noqa: E402

OTEL_SDK = ["opentelemetry-sdk==1.45.2", "opentelemetry-exporter-otlp-proto-http==1.45.2"]
OPENAI = "openai==3.57.0"
HTTPX = "httpx==0.29.0"  # openai 3.x no longer depends on it; some instrumentations import it

# group -> pip requirements and the emitters driven with them (tests/corpus/drive_py.py)
PY_GROUPS: dict[str, dict] = {
    # 2.1b0 is the last release before the util-genai rewrite: v1.28-v1.36 message events,
    # emitted through the Events API that OpenTelemetry 1.39 removed
    "openai-v2-2.1b0": {"pins": [OPENAI, "opentelemetry-instrumentation-openai-v2==2.1b0",
                                 "opentelemetry-api==1.33.1", "opentelemetry-sdk==1.33.1",
                                 "opentelemetry-exporter-otlp-proto-http==1.33.1",
                                 "opentelemetry-instrumentation==0.54b1",
                                 "opentelemetry-semantic-conventions==0.54b1", HTTPX],
                        "emitters": ["openai-v2-events"]},
    "openai-v2-2.4b0": {"pins": [OPENAI, HTTPX, *OTEL_SDK, "opentelemetry-instrumentation-openai-v2==2.4b0",
                                 "opentelemetry-util-genai==1.1b0"],  # 1.2b0+ drop a module 2.4b0 imports
                        "emitters": ["openai-v2-latest"]},
    "openinference-0.1.66": {"pins": [OPENAI, *OTEL_SDK, "openinference-instrumentation-openai==0.1.66",
                                      "openinference-instrumentation==0.1.72"],
                             "emitters": ["openinference"]},
    "openllmetry-0.62.4": {"pins": [OPENAI, *OTEL_SDK, "opentelemetry-instrumentation-openai==0.62.4",
                                    "opentelemetry-semantic-conventions-ai==0.5.1"],
                           "emitters": ["openllmetry"]},
    "langfuse-5.2.0": {"pins": [OPENAI, *OTEL_SDK, "langfuse==5.2.0"], "emitters": ["langfuse"]},
    "litellm-1.110.2": {"pins": [OPENAI, *OTEL_SDK, "litellm==1.110.2"], "emitters": ["litellm"]},
    # two instrumentations on one client: every call recorded twice, one span inside the other
    # (the nested duplicates the import keeps once)
    "stacked": {"pins": [OPENAI, *OTEL_SDK, "openinference-instrumentation-openai==0.1.66",
                         "openinference-instrumentation==0.1.72",
                         "opentelemetry-instrumentation-openai==0.62.4",
                         "opentelemetry-semantic-conventions-ai==0.5.1"],
                "emitters": ["stacked-openllmetry-openinference"]},
    # its OpenAI connector with its own model diagnostics (SEMANTICKERNEL_EXPERIMENTAL_GENAI_*)
    "semantic-kernel-1.45.0": {"pins": [OPENAI, *OTEL_SDK, "semantic-kernel==1.45.0"],
                               "emitters": ["semantic-kernel"]},
    # OpenLit wants openai<3 and sets up its own OTel SDK (the versions its pins resolve to)
    "openlit-1.45.0": {"pins": ["openai==2.54.0", "openlit==1.45.0"], "emitters": ["openlit"]},
    # OpenLit before its v1.37 rewrite: the v1.26 span events with "role: content" lines
    # (it imports the Events API that OpenTelemetry 1.39 removed: the SDK of 2.1b0 above)
    "openlit-1.34.43": {"pins": ["openai==1.109.1", "openlit==1.34.43", "openai-agents==0.3.3",
                                 "opentelemetry-api==1.33.1", "opentelemetry-sdk==1.33.1",
                                 "opentelemetry-exporter-otlp==1.33.1",
                                 "opentelemetry-instrumentation==0.54b1",
                                 "opentelemetry-semantic-conventions==0.54b1"],
                        "emitters": ["openlit-1.34"]},
}
NODE_EMITTERS = ["vercel-ai-4", "vercel-ai-5", "vercel-ai-6", "vercel-ai-7", "vercel-ai-7-legacy",
                 "openinference-js"]
# package.json + package-lock.json (pinned); .ci/run installs them: npm ci --prefix tests/corpus/node
NODE_DIR = HERE / "node"


def node_missing(node_dir: Path = NODE_DIR) -> str | None:
    """Why the Node emitters cannot run from ``node_dir``; None when they can."""
    if shutil.which("node") is None:
        return "node not found"
    if not (node_dir / "node_modules").is_dir():
        return f"the Node emitters are not installed (npm ci --prefix {node_dir})"
    return None


def node_command(emitter: str, api_base: str, endpoint: str, node_dir: Path = NODE_DIR) -> list[str]:
    """Run one Node emitter (drive.mjs, beside its node_modules) against ``api_base``, exporting
    OTLP/HTTP (protobuf, chunked) to ``endpoint``."""
    return ["node", str(node_dir / "drive.mjs"), emitter, api_base, endpoint]


def _node_dir(work: Path) -> Path:
    """The installed Node emitters: the repository's (npm ci --prefix tests/corpus/node), else
    a copy installed from the lock file under ``work``."""
    if node_missing() is None:
        return NODE_DIR
    nd = work / "node"
    nd.mkdir(exist_ok=True)
    for name in ("package.json", "package-lock.json", "drive.mjs"):
        shutil.copy(NODE_DIR / name, nd / name)
    if not (nd / "node_modules").exists():
        _run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=nd)
    return nd


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    print("  $", " ".join(cmd), flush=True)
    return subprocess.run(cmd, check=True, **kw)


def _venv(root: Path, name: str, pins: list[str]) -> Path:
    path = root / name
    python = path / "bin" / "python"
    if not python.exists():
        _run([sys.executable, "-m", "venv", str(path)])
        _run([str(python), "-m", "pip", "install", "-q", "--upgrade", "pip"])
        _run([str(python), "-m", "pip", "install", "-q", *pins])
    return python


def _capture(out: Path, srv: FakeServer, cmd_for_endpoint) -> None:
    if out.exists():
        out.unlink()
    with running_receiver(out) as rec:
        _run(cmd_for_endpoint(rec.endpoint), timeout=300)
        print(f"  -> {out.name}: {rec.counts}", flush=True)


def _versions(python: Path) -> dict[str, str]:
    r = subprocess.run([str(python), "-m", "pip", "list", "--format", "json"], check=True,
                       capture_output=True, text=True)
    keep = ("openai", "opentelemetry", "openinference", "langfuse", "litellm", "traceloop",
            "semantic-kernel", "openlit")
    return {p["name"]: p["version"] for p in json.loads(r.stdout) if p["name"].startswith(keep)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", help="comma-separated emitter or group names")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--out", default=str(HERE / "captures"))
    ap.add_argument("--work", help="keep the venvs / node_modules here (default: a temp dir, removed)")
    ap.add_argument("--pin", action="append", default=[], metavar="GROUP=REQ",
                    help="replace or add a requirement of a Python group, e.g. langfuse-5.2.0=langfuse==5.3.0")
    ap.add_argument("--no-node", action="store_true", help="skip the Node emitters")
    args = ap.parse_args()
    if args.list:
        for g, spec in PY_GROUPS.items():
            print(f"{g}: {', '.join(spec['emitters'])}  ({' '.join(spec['pins'])})")
        print(f"node (tests/corpus/node/package.json): {', '.join(NODE_EMITTERS)}")
        return
    only = set(args.only.split(",")) if args.only else None
    for pin in args.pin:
        group, _, req = pin.partition("=")
        name = req.split("=")[0].split("<")[0].split(">")[0]
        pins = PY_GROUPS[group]["pins"]
        PY_GROUPS[group]["pins"] = [p for p in pins if not p.startswith(name + "=")] + [req]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="replaygate-corpus-"))
    manifest_path = out / "versions.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    try:
        with FakeServer() as srv:
            for group, spec in PY_GROUPS.items():
                emitters = [e for e in spec["emitters"] if only is None or e in only or group in only]
                if not emitters:
                    continue
                print(f"[{group}]", flush=True)
                python = _venv(work, group, spec["pins"])
                versions = _versions(python)
                for em in emitters:
                    _capture(out / f"{em}.jsonl", srv, lambda ep, em=em: [
                        str(python), str(HERE / "drive_py.py"), em, srv.api_base, ep])
                    manifest[em] = {"group": group, "packages": versions}
            node_emitters = [e for e in NODE_EMITTERS if only is None or e in only or "node" in only]
            if node_emitters and not args.no_node:
                if shutil.which("npm") is None:
                    print("npm not found: Node emitters skipped", flush=True)
                else:
                    print("[node]", flush=True)
                    nd = _node_dir(work)
                    deps = json.loads((nd / "package.json").read_text())["dependencies"]
                    for em in node_emitters:
                        _capture(out / f"{em}.jsonl", srv, lambda ep, em=em, nd=nd: node_command(
                            em, srv.api_base, ep, nd))
                        manifest[em] = {"group": "node", "packages": deps}
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    manifest_path.write_text(json.dumps(dict(sorted(manifest.items())), indent=2) + "\n")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
