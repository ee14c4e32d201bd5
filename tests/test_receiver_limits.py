"""Issue 12/13: the OTLP receiver under hostile or unusual clients. Raw sockets, so the requests
are exactly what an attacker (or the OpenTelemetry JS exporter, which always sends chunked)
sends."""
from __future__ import annotations

import gzip
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from replaygate.sources.receiver import ReceiverLimits, running_receiver
from replaygate.sources.traces import import_traces

FIX = Path(__file__).parent / "fixtures" / "traces"
PB = (FIX / "otel137.pb").read_bytes()
PROTO = "application/x-protobuf"


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


def _connect(rcv) -> socket.socket:
    s = socket.create_connection(rcv.address, timeout=10)
    return s


def _response(s: socket.socket) -> tuple[int, dict, bytes]:
    """Read one HTTP response (status, headers, body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed without a response: {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    n = int(headers.get("content-length", 0))
    while len(body) < n:
        chunk = s.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), headers, body[:n]


def _raw(rcv, head: str, body: bytes = b"") -> tuple[int, dict, bytes]:
    with _connect(rcv) as s:
        s.sendall(head.encode("latin-1") + b"\r\n" + body)
        return _response(s)


def _post_head(extra: str, path: str = "/v1/traces", ctype: str = PROTO) -> str:
    return f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\n{extra}"


def _chunked(body: bytes, sizes=(1, 7, 300, 4096)) -> bytes:
    out, i, k = b"", 0, 0
    while i < len(body):
        n = sizes[k % len(sizes)]
        piece = body[i:i + n]
        ext = b";name=value" if k % 3 == 1 else b""
        out += f"{len(piece):x}".encode() + ext + b"\r\n" + piece + b"\r\n"
        i, k = i + n, k + 1
    return out + b"0\r\nX-Trailer: yes\r\n\r\n"


@pytest.mark.parametrize("headers, status", [
    ("Content-Length: -1\r\n", 400),
    ("Content-Length: +12\r\n", 400),
    ("Content-Length: 1e3\r\n", 400),
    ("Content-Length: 5\r\nContent-Length: 6\r\n", 400),
    ("Content-Length: 99999999999999999999999\r\n", 400),
    ("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", 400),  # two framings: smuggling
    ("Transfer-Encoding: gzip, chunked\r\n", 501),
    ("", 411),
])
def test_invalid_lengths_are_refused_without_reading(tmp_path, headers, status):
    with running_receiver(tmp_path / "t.jsonl") as rcv:
        with _connect(rcv) as s:
            # a body that never ends: reading "to EOF" would hang the test, not answer it
            s.sendall(_post_head(headers).encode() + b"\r\n" + b"\x00" * 100_000)
            code, h, _ = _response(s)
            assert code == status and h.get("connection") == "close"
        assert rcv.counts.rejected == {status: 1}
    assert (tmp_path / "t.jsonl").read_bytes() == b""


def test_chunked_bodies_are_accepted(tmp_path):
    out = tmp_path / "t.jsonl"
    with running_receiver(out) as rcv:
        code, _, body = _raw(rcv, _post_head("Transfer-Encoding: chunked\r\n"), _chunked(PB))
        assert code == 200 and body == b""
        js = (FIX / "openllmetry.json").read_bytes()
        code, _, body = _raw(rcv, _post_head("Transfer-Encoding: chunked\r\nContent-Encoding: gzip\r\n",
                                             ctype="application/json"), _chunked(gzip.compress(js), (5000,)))
        assert code == 200 and json.loads(body) == {}
        # keep-alive: two chunked requests on one connection, as an exporter sends them
        with _connect(rcv) as s:
            for _ in range(2):
                s.sendall(_post_head("Transfer-Encoding: chunked\r\n").encode() + b"\r\n" + _chunked(PB, (999,)))
                assert _response(s)[0] == 200
        # a real client streaming a generator sends chunked too
        with httpx.Client(base_url=rcv.endpoint, trust_env=False) as http:
            r = http.post("/v1/traces", content=iter([PB[:100], PB[100:]]), headers={"Content-Type": PROTO})
            assert r.status_code == 200 and r.request.headers.get("transfer-encoding") == "chunked"
    lines = out.read_text().splitlines()
    assert len(lines) == 5
    # what was recorded is exactly what was sent, however it was chunked
    direct = tmp_path / "direct.jsonl"
    with running_receiver(direct) as rcv, httpx.Client(base_url=rcv.endpoint, trust_env=False) as http:
        http.post("/v1/traces", content=PB, headers={"Content-Type": PROTO})
    assert lines[0] == lines[2] == lines[3] == lines[4] == direct.read_text().strip()


def test_chunked_bodies_have_the_same_limits(tmp_path):
    limits = ReceiverLimits(max_body_bytes=64 * 1024)
    with running_receiver(tmp_path / "t.jsonl", limits=limits) as rcv:
        # over the limit: refused as soon as the total passes it, the rest not read
        with _connect(rcv) as s:
            s.sendall(_post_head("Transfer-Encoding: chunked\r\n").encode() + b"\r\n")
            try:  # the receiver may refuse before all 80 kB are sent: stop sending, read its answer
                for _ in range(20):
                    s.sendall(b"1000\r\n" + b"\x0a" * 4096 + b"\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass
            code, h, _ = _response(s)
            assert code == 413 and h.get("connection") == "close"
        # a gzip bomb in chunks
        bomb = gzip.compress(b"\x00" * (4 * 1024 * 1024))
        assert _raw(rcv, _post_head("Transfer-Encoding: chunked\r\nContent-Encoding: gzip\r\n"),
                    _chunked(bomb, (4096,)))[0] == 413
        for bad in (b"zz\r\nab\r\n0\r\n\r\n", b"-1\r\n\r\n", b"2\r\nabcd\r\n0\r\n\r\n", b"1" * 9000 + b"\r\n"):
            assert _raw(rcv, _post_head("Transfer-Encoding: chunked\r\n"), bad)[0] == 400, bad
    assert (tmp_path / "t.jsonl").read_bytes() == b""


def test_bytes_in_flight_are_capped_across_requests(tmp_path):
    """Two bodies that together pass max_inflight_bytes: the second waits, then gets 503 with
    Retry-After (an exporter retries), and goes through once the first is done."""
    body = PB * (600_000 // len(PB) + 1)  # repeated fields: still a valid request, ~600 kB
    limits = ReceiverLimits(max_body_bytes=1_000_000, max_inflight_bytes=1_000_000, budget_wait_s=0.3)
    with running_receiver(tmp_path / "t.jsonl", limits=limits) as rcv:
        with _connect(rcv) as slow:
            slow.sendall(_post_head(f"Content-Length: {len(body)}\r\n").encode() + b"\r\n" + body[:1000])
            time.sleep(0.3)  # its 600 kB are reserved while it dribbles
            code, h, _ = _raw(rcv, _post_head(f"Content-Length: {len(body)}\r\n"), body)
            assert code == 503 and h.get("retry-after") == "1"
            assert _raw(rcv, _post_head(f"Content-Length: {len(PB)}\r\n"), PB)[0] == 200  # small fits
            slow.sendall(body[1000:])
            assert _response(slow)[0] == 200
        assert _raw(rcv, _post_head(f"Content-Length: {len(body)}\r\n"), body)[0] == 200
        deadline = time.monotonic() + 5  # given back just after the answer leaves
        while rcv.recorder.budget.used and time.monotonic() < deadline:
            time.sleep(0.01)
        assert rcv.recorder.budget.used == 0  # everything reserved was given back


def test_idle_and_slow_clients_are_timed_out(tmp_path):
    limits = ReceiverLimits(idle_timeout_s=1.0, request_timeout_s=2.0)
    with running_receiver(tmp_path / "t.jsonl", limits=limits) as rcv:
        before = threading.active_count()
        socks = [_connect(rcv) for _ in range(40)]
        for s in socks:
            s.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\n")  # headers never finished
        for s in socks:  # each is closed by the receiver (EOF), none hangs
            s.settimeout(10)
            assert s.recv(100) == b""
            s.close()
        deadline = time.monotonic() + 10
        while threading.active_count() > before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert threading.active_count() <= before
        # a body trickled in under the idle timeout but past the request deadline: 408
        with _connect(rcv) as s:
            s.sendall(_post_head(f"Content-Length: {len(PB)}\r\n").encode() + b"\r\n")
            code = None
            for i in range(60):
                try:
                    s.sendall(PB[i:i + 1])
                except OSError:
                    break
                time.sleep(0.1)
                s.setblocking(False)
                try:
                    code = _response_nowait(s)
                except BlockingIOError:
                    code = None
                finally:
                    s.setblocking(True)
                if code:
                    break
            assert code == 408


def _response_nowait(s: socket.socket) -> int | None:
    data = s.recv(65536)
    if not data:
        return None
    return int(data.split(b" ", 2)[1])


def test_connections_over_the_cap_get_503_at_once(tmp_path):
    limits = ReceiverLimits(max_connections=4, idle_timeout_s=5)
    with running_receiver(tmp_path / "t.jsonl", limits=limits) as rcv:
        held = [_connect(rcv) for _ in range(4)]
        time.sleep(0.2)
        with _connect(rcv) as s:
            code, h, _ = _response(s)
            assert code == 503 and h.get("retry-after") == "1"
        for s in held:
            s.close()
        time.sleep(0.3)
        assert _raw(rcv, _post_head(f"Content-Length: {len(PB)}\r\n"), PB)[0] == 200


@pytest.mark.parametrize("body", [
    b"[" * 50_000 + b"]" * 50_000,
    b'{"resourceSpans":' + b"[" * 50_000 + b"]" * 50_000 + b"}",
    (b'{"resourceSpans":[{"resource":{"attributes":[{"key":"a","value":'
     + b'{"arrayValue":{"values":[' * 400 + b'{"intValue":"1"}' + b"]}}" * 400 + b"}]}}]}"),
])
def test_deeply_nested_json_gets_an_answer(tmp_path, body):
    with running_receiver(tmp_path / "t.jsonl") as rcv:
        code, _, resp = _raw(rcv, _post_head(f"Content-Length: {len(body)}\r\n", ctype="application/json"), body)
        assert code in (200, 400), resp
        # the receiver is still fine
        assert _raw(rcv, _post_head(f"Content-Length: {len(PB)}\r\n"), PB)[0] == 200


def test_200_concurrent_posts(tmp_path):
    out = tmp_path / "t.jsonl"
    codes: list[int] = []
    with running_receiver(out) as rcv:
        go = threading.Barrier(200)

        def post():
            with _connect(rcv) as s:
                go.wait()  # all 200 connections open before any request is sent
                s.sendall(_post_head(f"Content-Length: {len(PB)}\r\n").encode() + b"\r\n" + PB)
                codes.append(_response(s)[0])
        threads = [threading.Thread(target=post) for _ in range(200)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert codes == [200] * 200
    lines = out.read_text().splitlines()
    assert len(lines) == 200 and all(json.loads(x)["resourceSpans"] for x in lines)


def _record(out: Path, fsize: int | None = None) -> tuple[subprocess.Popen, str]:
    def limit():
        if fsize is not None:  # the disk is "full" beyond fsize bytes (EFBIG instead of ENOSPC)
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    proc = subprocess.Popen([sys.executable, "-m", "replaygate.cli", "record", "--listen", "127.0.0.1:0",
                             "-o", str(out)], stderr=subprocess.PIPE, text=True, preexec_fn=limit,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    first = proc.stderr.readline()
    assert "recording OTLP/HTTP on http://" in first, first
    url = first.split(" on ")[1].split(" ")[0]
    return proc, url


def test_record_after_a_full_disk_keeps_whole_lines_and_stops_on_sigterm(tmp_path):
    out = tmp_path / "rec.jsonl"
    small = PB
    one_line = None
    proc, url = _record(out, fsize=300_000)
    try:
        with httpx.Client(base_url=url, trust_env=False, timeout=30) as http:
            r = http.post("/v1/traces", content=small, headers={"Content-Type": PROTO})
            assert r.status_code == 200
            one_line = out.stat().st_size
            big = PB * (400_000 // len(PB))  # its line does not fit in what is left
            r = http.post("/v1/traces", content=big, headers={"Content-Type": PROTO})
            assert r.status_code == 503 and "cannot write" in r.text and r.headers["retry-after"]
            assert out.stat().st_size == one_line  # the partial line was cut off
            r = http.post("/v1/traces", content=small, headers={"Content-Type": PROTO})
            assert r.status_code == 200  # a later request appends a whole line
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    lines = out.read_text().splitlines()
    assert len(lines) == 2 and all(json.loads(x) for x in lines)
    assert import_traces([out])[0]
    last = err.strip().splitlines()[-1]
    assert last.startswith("stopped: 2 requests answered 200: 18 spans, 0 log records recorded")
    assert "HTTP 503 busy or cannot write × 1" in last and "ReceiverCounts(" not in err
    assert "last write error:" in last


def test_record_shows_a_counter_and_a_readable_summary(tmp_path):
    out = tmp_path / "rec.jsonl"
    proc, url = _record(out)
    try:
        r = httpx.post(url + "/v1/traces", content=PB, headers={"Content-Type": PROTO}, trust_env=False)
        assert r.status_code == 200
        r = httpx.post(url + "/v1/nope", content=b"{}", headers={"Content-Type": "application/json"},
                       trust_env=False)
        assert r.status_code == 404
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert "received 1 request answered 200: 9 spans" in err  # the live counter (a line in a log)
    assert err.strip().splitlines()[-1] == (
        f"stopped: 1 request answered 200: 9 spans, 0 log records recorded; 1 refused "
        f"(HTTP 404 unknown path × 1) -> {out}")
