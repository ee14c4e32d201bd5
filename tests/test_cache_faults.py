"""Disk and cache faults: each is a clear message naming the file and what to do (exit 2 for a
bad file the user gave, 3 for a run that could not complete), never "internal error"; what was
paid for is kept; the report is written before the history is touched."""
import json
import os
import shutil
import sqlite3

import pytest
from click.testing import CliRunner

from faults import fill, read_only, small_disk
from replaygate.cli import cli
from replaygate.errors import InputError
from replaygate.replay.cache import ResponseCache
from replay_helpers import write_golden

N = 12


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def chat_calls(server) -> int:
    return sum(1 for q in server.stats()["requests"] if q["prompt"].startswith("question"))


@pytest.fixture
def project(tmp_path, llm_server):
    rows = [{"id": f"q{i:02d}", "input": f"question {i} " + "pad " * 20, "expected": f"w{i}"} for i in range(N)]
    write_golden(tmp_path, rows)
    llm_server.configure(answers={r["input"]: f"the answer is {r['expected']} " + "x" * 2000 for r in rows})

    def write(cache: str = ".replaygate/cache.sqlite", history: str | None = None, latency: int = 0) -> os.PathLike:
        cfg = tmp_path / "replaygate.yaml"
        cfg.write_text(f"""\
version: 1
dataset: [{{golden: golden.jsonl}}]
variants:
  baseline: {{model: "openai/answers@latency={latency}", api_base: "{llm_server.api_base}"}}
  candidate: {{model: openai/answers, api_base: "{llm_server.api_base}", params: {{temperature: 0.5}}}}
concurrency: 1
cache: {cache}
{f"history: {history}" if history else ""}
scorers:
  - {{name: correct, type: contains}}
gates:
  - {{metric: quality.pass_rate, max_decrease: 0.5}}
""")
        return cfg

    return write


def assert_clean(r, code: int, path) -> None:
    assert r.exit_code == code, r.output
    assert str(path) in r.output, r.output
    assert "internal error" not in r.output and "Traceback" not in r.output


def _fill_cache(path, rows) -> None:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE responses (key TEXT PRIMARY KEY, value TEXT NOT NULL, created REAL NOT NULL)")
    db.executemany("INSERT INTO responses VALUES (?, ?, 0)", rows)
    db.commit()
    db.close()


@pytest.mark.parametrize("damage", ["garbage", "truncated", "wrong_schema", "folder", "wrong_value"])
def test_a_bad_cache_file_is_exit_2_naming_it_before_any_call(project, tmp_path, llm_server, damage):
    cache = tmp_path / "cache.sqlite"
    cfg = project(cache="cache.sqlite")
    if damage == "garbage":
        cache.write_bytes(b"not a database at all\n" * 100)
    elif damage == "truncated":
        assert invoke("run", "-c", cfg, "--variant", "baseline", "-o", tmp_path / "r.json").exit_code == 0
        data = cache.read_bytes()
        assert len(data) > 8192
        cache.write_bytes(data[: len(data) // 2 + 100])
        for side in ("-wal", "-shm"):
            if os.path.exists(str(cache) + side):
                os.unlink(str(cache) + side)
    elif damage == "wrong_schema":
        db = sqlite3.connect(cache)
        db.execute("CREATE TABLE responses (id INTEGER, blob BLOB)")
        db.commit()
        db.close()
    elif damage == "folder":
        cache.mkdir()
    elif damage == "wrong_value":
        assert invoke("run", "-c", cfg, "--variant", "baseline", "-o", tmp_path / "r.json").exit_code == 0
        db = sqlite3.connect(cache)
        db.execute("UPDATE responses SET value = ? WHERE rowid = (SELECT MIN(rowid) FROM responses)",
                   ('{"output": 5, "tool_calls": "x"}',))
        db.execute("UPDATE responses SET value = ? WHERE rowid = (SELECT MAX(rowid) FROM responses)",
                   ("[1, 2]",))
        db.commit()
        db.close()
    before = chat_calls(llm_server)
    for mode in ([], ["--offline"]):
        r = invoke("run", "-c", cfg, "--variant", "baseline", "-o", tmp_path / "out.json", *mode)
        assert_clean(r, 2, cache)
    assert chat_calls(llm_server) == before  # nothing paid for on a cache we cannot use
    if damage != "folder":
        # what to do is said: delete the file / --refresh / another path
        assert "delete" in r.output or "another path" in r.output, r.output


def test_wrong_value_is_replaced_by_refresh(project, tmp_path, llm_server):
    cfg = project(cache="cache.sqlite")
    assert invoke("run", "-c", cfg, "--variant", "baseline", "-o", tmp_path / "r.json").exit_code == 0
    db = sqlite3.connect(tmp_path / "cache.sqlite")
    db.execute("UPDATE responses SET value = '\"text\"'")
    db.commit()
    db.close()
    assert invoke("run", "-c", cfg, "--variant", "baseline", "-o", tmp_path / "r.json").exit_code == 2
    r = invoke("run", "-c", cfg, "--variant", "baseline", "-o", tmp_path / "r.json", "--refresh")
    assert r.exit_code == 0, r.output
    assert invoke("run", "-c", cfg, "--variant", "baseline", "-o", tmp_path / "r.json", "--offline").exit_code == 0


def test_offline_reads_a_wal_cache_in_a_read_only_folder(project, tmp_path, llm_server):
    folder = tmp_path / "ro"
    folder.mkdir()
    cfg = project(cache="ro/cache.sqlite")
    assert invoke("run", "-c", cfg, "--variant", "baseline", "-o", tmp_path / "r1.json").exit_code == 0
    paid = chat_calls(llm_server)
    assert paid == N
    with read_only(folder):
        r = invoke("run", "-c", cfg, "--variant", "baseline", "-o", tmp_path / "r2.json", "--offline")
        assert r.exit_code == 0, r.output  # before: every entry "not in the response cache", exit 3
        run = json.loads((tmp_path / "r2.json").read_text())
        assert all(c["samples"][0]["cached"] and c["samples"][0]["error"] is None for c in run["cases"])
        # read-write on a read-only cache: refused before any call, with the way out
        r = invoke("run", "-c", cfg, "--variant", "baseline", "-o", tmp_path / "r3.json")
        assert_clean(r, 2, folder / "cache.sqlite")
        assert "--offline" in r.output
    assert chat_calls(llm_server) == paid
    assert sorted(os.listdir(folder)) == ["cache.sqlite"]  # nothing left in the folder


def test_offline_reads_entries_still_in_the_wal_file(tmp_path):
    """A cache copied or mounted read-only right after a killed run: committed entries are
    still in the -wal file and must be found."""
    src = tmp_path / "live"
    src.mkdir()
    c = ResponseCache(src / "cache.sqlite")
    c._db.execute("PRAGMA wal_autocheckpoint=0")
    c.put("k1", {"output": "one"})
    c.flush()
    folder = tmp_path / "copy"
    folder.mkdir()
    for name in os.listdir(src):  # the -wal holds the entry (no checkpoint yet)
        shutil.copy(src / name, folder / name)
    assert os.path.getsize(folder / "cache.sqlite-wal") > 0
    c.close()
    os.unlink(folder / "cache.sqlite-shm")
    with read_only(folder):
        with ResponseCache(folder / "cache.sqlite", read_only=True) as ro:
            assert ro.get("k1") == {"output": "one"}


def test_a_full_disk_mid_run_stops_with_the_cache_named_and_keeps_what_was_paid(project, tmp_path, llm_server):
    with small_disk(tmp_path / "disk", "2m") as disk:
        # calls slow enough that the cache's writer thread commits (and fails) between them: on
        # the direct HTTP path 12 instant answers could all be paid before its first commit
        cfg = project(cache=str(disk / "cache.sqlite"), latency=40)
        # room for the cache to open and take a few entries, not all of them
        with open(disk / "ballast", "wb") as f:
            f.write(b"\0" * (2 * 1024 * 1024 - 160 * 1024))
        r = invoke("run", "-c", cfg, "--variant", "baseline", "-o", tmp_path / "partial.json")
        assert_clean(r, 3, disk / "cache.sqlite")
        assert "partial run written" in r.output
        paid = chat_calls(llm_server)
        assert 0 < paid < N  # it stopped paying once the answers could not be kept
        run = json.loads((tmp_path / "partial.json").read_text())
        assert run["complete"] is False
        answered = [c for c in run["cases"] if c["samples"][0]["output"]]
        assert len(answered) == paid  # every paid answer is in the partial run
        os.unlink(disk / "ballast")  # space again: the rerun pays only for what was not cached
        r = invoke("run", "-c", cfg, "--variant", "baseline", "-o", tmp_path / "full.json")
        assert r.exit_code == 0, r.output
        cached = sum(c["samples"][0]["cached"] for c in json.loads((tmp_path / "full.json").read_text())["cases"])
        assert chat_calls(llm_server) - paid == N - cached
        assert cached >= 1
        assert [p for p in os.listdir(disk) if p.endswith(".tmp")] == []


def test_cache_writer_failure_is_raised_not_swallowed(tmp_path):
    with small_disk(tmp_path / "disk", "1m") as disk:
        cache = ResponseCache(disk / "c.sqlite")
        fill(disk)
        cache.put("a", {"output": "x" * 200_000})
        with pytest.raises(Exception) as e:
            cache.flush()
        assert str(disk / "c.sqlite") in str(e.value) and "cannot write the response cache" in str(e.value)
        with pytest.raises(Exception):  # every later put says so too: nothing dropped silently
            cache.put("b", {"output": "y"})
        assert cache._writer.is_alive()  # flushes still answered
        cache.close(raise_error=False)


def test_history_failure_after_paid_calls_keeps_report_and_runs(project, tmp_path, llm_server):
    folder = tmp_path / "hist"
    folder.mkdir()
    cfg = project(history="hist/history.sqlite")
    with read_only(folder):
        r = invoke("gate", "-c", cfg, "--format", "md", "-o", tmp_path / "report.md",
                   "--save-runs", tmp_path / "runs")
        assert_clean(r, 2, folder / "history.sqlite")
        assert "not recorded in the history" in r.output
    assert (tmp_path / "report.md").read_text().startswith("## replaygate")
    for name in ("baseline", "candidate"):
        assert json.loads((tmp_path / "runs" / f"{name}.json").read_text())["complete"] is True
    paid = chat_calls(llm_server)
    r = invoke("gate", "-c", cfg, "--format", "md", "-o", tmp_path / "report.md")  # now writable
    assert r.exit_code == 0, r.output
    assert chat_calls(llm_server) == paid  # the rerun paid nothing: the cache kept every answer


def test_history_on_a_full_disk_is_exit_3_with_the_report_written(project, tmp_path, llm_server):
    with small_disk(tmp_path / "disk", "512k") as disk:
        cfg = project(history=str(disk / "history.sqlite"))
        fill(disk)
        r = invoke("run", "-c", cfg, "--variant", "baseline", "-o", tmp_path / "run.json")
        assert_clean(r, 3, disk / "history.sqlite")
        assert json.loads((tmp_path / "run.json").read_text())["complete"] is True


def test_unwritable_outputs_fail_before_any_call(project, tmp_path, llm_server):
    cfg = project()
    folder = tmp_path / "out"
    folder.mkdir()
    with read_only(folder):
        r = invoke("run", "-c", cfg, "--variant", "baseline", "-o", folder / "run.json")
        assert_clean(r, 2, folder / "run.json")
        r = invoke("gate", "-c", cfg, "--save-runs", folder)
        assert_clean(r, 2, folder / "baseline.json")
        r = invoke("gate", "-c", cfg, "-o", folder / "report.md")
        assert_clean(r, 2, folder / "report.md")
    assert chat_calls(llm_server) == 0  # nothing paid for a result that could not be written


def test_cache_path_is_a_special_file(project, tmp_path, llm_server):
    cfg = project(cache="/proc/self/mem")
    r = invoke("run", "-c", cfg, "--variant", "baseline", "-o", tmp_path / "run.json")
    assert_clean(r, 2, "/mem")  # the config resolves /proc/self to the process id
    assert chat_calls(llm_server) == 0


def test_input_error_type_for_a_folder_cache(tmp_path):
    (tmp_path / "c").mkdir()
    with pytest.raises(InputError) as e:
        ResponseCache(tmp_path / "c")
    assert e.value.field == "cache"
