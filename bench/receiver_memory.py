"""Peak memory of `replaygate record` while N clients each send one large body at once.

    python bench/receiver_memory.py [--clients 6] [--mb 60] [--src SRC_DIR]

Starts the receiver as a subprocess (the replaygate on sys.path, or --src), opens N raw
connections, sends N protobuf bodies of about MB megabytes concurrently and prints the answers and
the receiver's peak RSS (VmHWM)."""
from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

FIX = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "traces" / "otel137.pb"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=6)
    ap.add_argument("--mb", type=float, default=60)
    ap.add_argument("--src", help="replaygate source folder to run (default: the installed one)")
    args = ap.parse_args()
    pb = FIX.read_bytes()
    body = pb * int(args.mb * 1024 * 1024 // len(pb))
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if args.src:
        env["PYTHONPATH"] = args.src
    with tempfile.TemporaryDirectory() as d:
        proc = subprocess.Popen([sys.executable, "-m", "replaygate.cli", "record", "--listen", "127.0.0.1:0",
                                 "-o", str(Path(d) / "out.jsonl")], stderr=subprocess.PIPE, text=True, env=env)
        url = proc.stderr.readline().split(" on http://")[1].split(" ")[0]
        host, port = url.rsplit(":", 1)
        codes: list[str] = []

        def send() -> None:
            with socket.create_connection((host, int(port)), timeout=600) as s:
                s.sendall(f"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
                          f"Content-Length: {len(body)}\r\n\r\n".encode())
                try:
                    s.sendall(body)
                except OSError:
                    pass  # refused before the whole body was read
                codes.append(s.recv(100).split(b"\r\n")[0].decode())

        threads = [threading.Thread(target=send) for _ in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        hwm = next(line for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines()
                   if line.startswith("VmHWM"))
        proc.terminate()
        proc.wait()
    print(f"{args.clients} x {len(body) / 2**20:.0f} MB: {sorted(codes)}; receiver peak {hwm.split(':')[1].strip()}")


if __name__ == "__main__":
    main()
