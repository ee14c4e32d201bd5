"""replaygate against a real model nobody here wrote (issue 16): SmolLM2-135M-Instruct behind
llama-cpp-python's OpenAI-compatible server, installed by example-configs/local-model/setup-server.sh
into a throwaway venv (skipped, with the reason, only where the build tools are missing). Marked
``realmodel``: the default test run leaves these out, .ci/run runs them in a step of their own
(``pytest -m realmodel``).

At temperature 0 the model's answers are deterministic (checked below), so verdicts are asserted
from them; where a verdict rests on the model's behaviour, that behaviour is asserted first from
the run files, so a model that stopped behaving so fails with a message saying what changed. The
measurements (judge usable-verdict share, estimated vs reported tokens, times) are printed: run
with ``-s`` to see them. No assertion depends on wall-clock time: on a loaded 2-core machine one
call took 18 s, idle 0.1-0.5 s.
"""
from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner
from scipy import stats as sps

from replaygate.cli import cli
from replaygate.config import schema_errors

pytestmark = pytest.mark.realmodel

REPO = Path(__file__).resolve().parents[1]
SETUP = REPO / "example-configs" / "local-model" / "setup-server.sh"
VENV = Path(os.environ.get("REPLAYGATE_LLAMA_VENV") or Path.home() / ".cache/replaygate/llama-venv")
START_TIMEOUT = 300  # seconds for the server to load the model; generous for a loaded machine

# open questions: a short-answer prompt keeps SmolLM2 under 30 words on most of them, a prompt
# asking for an essay makes it run on to max_tokens on every one of them
QUESTIONS = [
    ("sky", "What color is the sky on a clear day?", "blue"), ("grass", "What color is grass?", "green"),
    ("cat", "What sound does a cat make?", "meow"), ("dog", "What sound does a dog make?", "bark"),
    ("week", "How many days are in a week?", "7"), ("sun", "What is the sun?", "star"),
    ("water", "What is water made of?", "hydrogen"), ("bees", "What do bees make?", "honey"),
    ("rain", "Why does it rain?", "cloud"), ("ice", "What happens to ice when it gets warm?", "melt"),
    ("moon", "What is the moon?", "earth"), ("cows", "What do cows drink?", "water"),
    ("fish", "Where do fish live?", "water"), ("plants", "What do plants need to grow?", "water"),
    ("snow", "What color is snow?", "white"), ("breakfast", "What do people eat for breakfast?", "egg"),
]
SHORT = "You are a helpful assistant. Answer the question in one short sentence."
ESSAY = ("You are a helpful assistant. Explain your answer at length: write a long, detailed essay of "
         "several paragraphs with background and history.")


def note(text: str) -> None:
    sys.stderr.write(f"\n[realmodel] {text}\n")


class LlamaServer:
    """``python -m llama_cpp.server`` on a loopback port; stop() kills it like a crash would. Its
    log (uvicorn's access lines included) goes to ``log``, so a test can count the calls it got."""

    def __init__(self, gguf: str, log: Path, port: int | None = None):
        self.gguf, self.log = gguf, log
        if port is None:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
        self.port = port
        self.proc: subprocess.Popen | None = None

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> "LlamaServer":
        # --interrupt_requests False: by default a waiting request cuts off the running stream
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [str(VENV / "bin/python"), "-m", "llama_cpp.server", "--model", self.gguf, "--host", "127.0.0.1",
                 "--port", str(self.port), "--interrupt_requests", "False", "--n_ctx", "2048", "--seed", "0",
                 "--verbose", "False"], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"the llama.cpp server exited while starting:\n{self.log.read_text()[-3000:]}")
            try:
                urllib.request.urlopen(self.api_base + "/models", timeout=5).close()
                return self
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise AssertionError(f"the llama.cpp server did not start within {START_TIMEOUT} s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def completions(self) -> int:
        """Chat-completion requests the server's log shows so far (every start appends to it)."""
        return self.log.read_text(errors="replace").count('"POST /v1/chat/completions HTTP/1.1"')


@pytest.fixture(scope="module")
def gguf() -> str:
    start = time.monotonic()
    r = subprocess.run(["bash", str(SETUP), str(VENV)], capture_output=True, text=True)
    if r.returncode == 77:
        pytest.skip(r.stderr.strip())
    assert r.returncode == 0, f"setup-server.sh exited {r.returncode}:\n{r.stderr[-3000:]}"
    note(f"setup-server.sh: {time.monotonic() - start:.0f} s")
    return r.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def server(gguf, tmp_path_factory):
    srv = LlamaServer(gguf, tmp_path_factory.mktemp("llama") / "server.log").start()
    yield srv
    srv.stop()


def variant(d: Path, name: str, api_base: str, system: str, max_tokens: int = 48, extra: str = "") -> str:
    (d / "prompts").mkdir(exist_ok=True)
    (d / "prompts" / f"{name}.md").write_text(system + "\n")
    return (f"    model: openai/smollm2\n    api_base: {api_base}\n"
            f"    prompt: {{system: prompts/{name}.md}}\n"
            f"    params: {{temperature: 0, max_tokens: {max_tokens}, seed: 0}}\n{extra}")


def project(d: Path, api_base: str, candidate: str = ESSAY, cases: int = len(QUESTIONS), scorers: str = "",
            gates: str = "", baseline_extra: str = "", candidate_extra: str = "", max_tokens: int = 48) -> Path:
    """A golden set of ``cases`` questions and a config gating SHORT against ``candidate``."""
    d.mkdir(parents=True, exist_ok=True)
    (d / "golden.jsonl").write_text("".join(json.dumps({"id": i, "input": q, "expected": e}) + "\n"
                                            for i, q, e in QUESTIONS[:cases]))
    scorers = scorers or ("  - {name: short, type: length, unit: words, max: 30}\n"
                          "  - {name: correct, type: icontains, informational: true}\n")
    gates = gates or ("  - {metric: quality.pass_rate, max_decrease: 0.05}\n"
                      "  - {metric: finish.length.rate, max_increase: 0.05}\n")
    (d / "replaygate.yaml").write_text(
        "version: 1\ndataset:\n  - golden: golden.jsonl\nvariants:\n"
        f"  baseline:\n{variant(d, 'baseline', api_base, SHORT, max_tokens, baseline_extra)}"
        f"  candidate:\n{variant(d, 'candidate', api_base, candidate, max_tokens, candidate_extra)}"
        "concurrency: 1\ntimeout: 600\n"  # llama.cpp's server answers one request at a time
        f"scorers:\n{scorers}gates:\n{gates}decision: {{mode: significant, confidence: 0.95}}\n")
    return d / "replaygate.yaml"


def invoke(*args) -> object:
    return CliRunner().invoke(cli, [*map(str, args)])


def run_file(path: Path) -> dict:
    return json.loads(path.read_text())


def samples(path: Path) -> list[dict]:
    return [s for c in run_file(path)["cases"] for s in c["samples"]]


def passes(path: Path, counting: tuple[str, ...]) -> dict[str, bool]:
    """Per case: did every counting scorer pass (read from the run file, not from the comparison)."""
    return {c["id"]: all(c["samples"][0]["scores"][n]["passed"] for n in counting) for c in run_file(path)["cases"]}


def test_a_system_prompt_that_makes_answers_long_fails_the_gate(server, tmp_path):
    cfg = project(tmp_path, server.api_base)
    start = time.monotonic()
    r = invoke("gate", "-c", cfg, "--save-runs", tmp_path / "runs", "--format", "json", "-o", tmp_path / "cmp.json")
    note(f"gate, {len(QUESTIONS)} cases x 2 prompts: {time.monotonic() - start:.0f} s")
    assert r.exit_code == 1, r.output
    base_file, cand_file = tmp_path / "runs/baseline.json", tmp_path / "runs/candidate.json"
    for f in (base_file, cand_file):
        run = run_file(f)
        assert schema_errors(run, "run.schema.json") == [] and run["complete"] is True
        assert run["environment"]["conditions"]["concurrency"] == 1
        assert all(s["error"] is None and s["provenance"] == "live" for s in samples(f))

    # the model's behaviour the verdict rests on, read from the run files: the essay prompt runs
    # every answer on to max_tokens and past 30 words, the short prompt stops on its own
    base, cand = samples(base_file), samples(cand_file)
    b_pass, c_pass = passes(base_file, ("short",)), passes(cand_file, ("short",))
    losses = sum(b_pass[i] and not c_pass[i] for i in b_pass)
    gains = sum(c_pass[i] and not b_pass[i] for i in b_pass)
    cut_b = sum(s["finish_reason"] == "length" for s in base)
    cut_c = sum(s["finish_reason"] == "length" for s in cand)
    note(f"short answers: baseline {sum(b_pass.values())}/{len(b_pass)}, essay {sum(c_pass.values())}/{len(c_pass)} "
         f"(lost {losses}, gained {gains}); cut off at max_tokens: {cut_b} vs {cut_c}")
    assert losses >= 10 and gains == 0, "SmolLM2 no longer writes long answers for the essay prompt"
    assert cut_c - cut_b >= 10
    # the paired statistics must decide these: even the exact sign test on the discordant pairs,
    # Bonferroni over the two gates, rejects (replaygate's test also allows a tolerance of 0.05)
    assert sps.binomtest(losses, losses + gains, 0.5, alternative="greater").pvalue < 0.025 / 2

    cmp = json.loads((tmp_path / "cmp.json").read_text())
    q = cmp["metrics"]["quality.pass_rate"]
    assert q["baseline"] == pytest.approx(sum(b_pass.values()) / len(b_pass))
    assert q["candidate"] == pytest.approx(sum(c_pass.values()) / len(c_pass))
    verdicts = {g["metric"]: g["verdict"] for g in cmp["gates"]}
    assert verdicts == {"quality.pass_rate": "fail", "finish.length.rate": "fail"}

    # deterministic at temperature 0: fresh calls give the answers the cache holds
    again = invoke("run", "-c", cfg, "--variant", "baseline", "--no-cache", "-o", tmp_path / "again.json")
    assert again.exit_code == 0, again.output
    assert [s["output"] for s in samples(tmp_path / "again.json")] == [s["output"] for s in base]

    # the same gate with the candidate's prompt set back to the baseline's passes, from the cache
    same = project(tmp_path, server.api_base, candidate=SHORT)
    calls = server.completions()
    r = invoke("gate", "-c", same, "--format", "json", "-o", tmp_path / "same.json")
    assert r.exit_code == 0, r.output
    assert {g["verdict"] for g in json.loads((tmp_path / "same.json").read_text())["gates"]} <= {"pass", "inconclusive"}
    assert server.completions() == calls  # nothing was asked again


def test_the_provider_killed_mid_run_gives_exit_3_and_a_resumable_partial_run(gguf, tmp_path):
    srv = LlamaServer(gguf, tmp_path / "server.log").start()
    cfg = project(tmp_path / "p", srv.api_base, candidate=SHORT + " Start with 'Well,'.")
    total = 2 * len(QUESTIONS)
    out: dict = {}
    gate_thread = threading.Thread(target=lambda: out.update(r=invoke("gate", "-c", cfg, "--save-runs", tmp_path / "runs")))
    try:
        gate_thread.start()
        cache = tmp_path / "p" / ".replaygate" / "cache.sqlite"
        deadline = time.monotonic() + 1800
        answered_before_kill = 0
        while gate_thread.is_alive() and time.monotonic() < deadline:
            if cache.exists():
                try:
                    with sqlite3.connect(cache) as db:
                        answered_before_kill = db.execute("SELECT count(*) FROM responses").fetchone()[0]
                except sqlite3.OperationalError:  # the table is not there yet
                    pass
                if answered_before_kill >= 6:
                    break
            time.sleep(0.1)
        assert gate_thread.is_alive(), "the gate finished before the server could be killed"
        killed_at = time.monotonic()
        srv.stop()  # SIGKILL: the server is gone, nothing listens on its port
        gate_thread.join(timeout=1800)
        note(f"provider killed after {answered_before_kill} answers: the gate stopped "
             f"{time.monotonic() - killed_at:.1f} s later")
    finally:
        srv.stop()
    r = out["r"]
    assert r.exit_code == 3, r.output
    assert "provider lost" in r.output
    partial = samples(tmp_path / "runs/baseline.json") + samples(tmp_path / "runs/candidate.json")
    assert len(partial) == total
    assert not (run_file(tmp_path / "runs/baseline.json")["complete"] and run_file(tmp_path / "runs/candidate.json")["complete"])
    answered = sum(s["error"] is None for s in partial)
    not_run = sum(s["error"] is not None and s["error"]["type"] == "NotRun" for s in partial)
    # the calls in flight when the server died failed (retried, then counted); the rest never ran
    assert answered >= 6 and not_run >= 1 and answered + not_run >= total - 4
    assert answered < total

    # the server comes back on the same port: the rerun resumes from the cache
    calls = srv.completions()
    srv = LlamaServer(gguf, tmp_path / "server.log", port=srv.port).start()
    try:
        r = invoke("gate", "-c", cfg, "--save-runs", tmp_path / "runs2")
    finally:
        srv.stop()
    assert r.exit_code in (0, 1), r.output  # measured on every case (a verdict, whatever it is)
    resumed = samples(tmp_path / "runs2/baseline.json") + samples(tmp_path / "runs2/candidate.json")
    assert all(s["error"] is None for s in resumed)
    assert sum(s["provenance"] == "cache" for s in resumed) == answered
    # the server saw only the calls not answered before (plus at most one warm-up per variant)
    asked = srv.completions() - calls
    note(f"rerun: {answered} answers from the cache, the server got {asked} calls for the other {total - answered}")
    assert total - answered <= asked <= total - answered + 2


@pytest.mark.parametrize("transport", ["litellm", "direct"])
def test_streamed_usage_is_estimated_and_never_compared_with_reported(server, tmp_path, transport):
    """llama.cpp sends no usage chunk when streaming: through litellm the counts are its
    tokenizer's estimate; on the direct path (the default for an openai/ model with an api_base)
    there are none. Either way they are never compared with the provider's reported counts."""
    cfg = project(tmp_path, server.api_base, candidate=SHORT, cases=8, max_tokens=32,
                  scorers="  - {name: correct, type: icontains, informational: true}\n",
                  baseline_extra="    price: {input: 0.1, output: 0.2}\n    stream: false\n",
                  candidate_extra=("    price: {input: 0.1, output: 0.2}\n    stream: true\n"
                                   f"    transport: {transport}\n"),
                  gates="  - {metric: tokens.input.mean, max_increase: \"5%\"}\n"
                        "  - {metric: cost.mean, max_increase: \"5%\"}\n")
    r = invoke("gate", "-c", cfg, "--save-runs", tmp_path / "runs", "--format", "json", "-o", tmp_path / "cmp.json")
    assert r.exit_code == 0, r.output
    base, cand = samples(tmp_path / "runs/baseline.json"), samples(tmp_path / "runs/candidate.json")
    assert all(s["error"] is None for s in base + cand)
    # the same prompts (the answers mostly match too, but llama.cpp's streamed and non-streamed
    # answers are not always the same text: seen on 1 of 8)
    same = sum(b["output"] == c["output"] for b, c in zip(base, cand))
    assert {s["usage_source"] for s in base} == {"reported"}
    cmp = json.loads((tmp_path / "cmp.json").read_text())
    assert cmp["metrics"]["tokens.input.mean"]["p_value"] is None
    assert cmp["metrics"]["tokens.input.mean"]["delta"] is None
    if transport == "litellm":
        assert {s["usage_source"] for s in cand} == {"estimated"}  # llama.cpp streams no usage
        est = sum(s["input_tokens"] for s in cand) / sum(s["input_tokens"] for s in base) - 1
        note(f"input tokens, litellm's estimate vs llama.cpp's count for the same prompts: {est:+.1%} "
             f"({same} of {len(base)} answers identical streamed and not)")
        for g in cmp["gates"]:
            assert g["verdict"] == "inconclusive" and "not the same measurement" in g["reason"], g
    else:
        assert {s["usage_source"] for s in cand} == {None}
        assert all(s["input_tokens"] is None and s["cost_usd"] is None for s in cand)
        for g in cmp["gates"]:
            assert g["verdict"] == "inconclusive", g
        note(f"direct path, streamed: no token counts; gates: {[g['reason'] for g in cmp['gates']]}")


def test_a_small_judge_with_structured_output_gives_usable_verdicts(server, tmp_path):
    """SmolLM2 judges its own answers to 12 questions, once with the rubric's prompt only
    (structured_output: off) and once as replaygate does by default (a JSON Schema as
    response_format, which llama.cpp enforces with a grammar)."""
    start = time.monotonic()
    share = {}
    for mode in ("off", "auto"):
        scorers = ("  - {name: correct, type: icontains}\n"
                   f"  - {{name: judged, type: judge, rubric: correctness, model: openai/smollm2, "
                   f"api_base: \"{server.api_base}\", params: {{temperature: 0, max_tokens: 96, seed: 0}}, "
                   f"structured_output: {mode}, timeout: 600, informational: true}}\n")
        # one directory: the answers come from the cache the second time, the judge's are keyed by mode
        cfg = project(tmp_path, server.api_base, cases=12, max_tokens=32, scorers=scorers)
        r = invoke("run", "-c", cfg, "--variant", "baseline", "-o", tmp_path / f"{mode}.json")
        assert r.exit_code == 0, r.output
        got = [s["scores"]["judged"] for s in samples(tmp_path / f"{mode}.json")]
        assert len(got) == 12
        share[mode] = sum(g["score"] is not None for g in got) / len(got)
        scored = [g["score"] for g in got if g["score"] is not None]
        if scored:  # an unusable verdict is a missing score, not 0
            mean = run_file(tmp_path / f"{mode}.json")["summary"]["score.judged.mean"]
            assert mean == pytest.approx(sum(scored) / len(scored))
    note(f"SmolLM2 judge, usable verdicts of 12: prompt only {share['off']:.0%}, structured output "
         f"{share['auto']:.0%} ({time.monotonic() - start:.0f} s)")
    assert share["auto"] >= 0.75  # most samples
    assert share["auto"] > share["off"]
