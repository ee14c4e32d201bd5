#!/usr/bin/env bash
# Try replaygate on a real model, no API key: installs llama.cpp's server and SmolLM2-135M-Instruct
# into a throwaway venv (setup-server.sh), starts it on 127.0.0.1:8765, runs the gate of
# replaygate.yaml (a concise prompt vs a pirate prompt), stops the server.
#   bash example-configs/local-model/run.sh [extra replaygate gate flags]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${REPLAYGATE_LLAMA_VENV:-$HOME/.cache/replaygate/llama-venv}"
port=8765
gguf="$(bash "$here/setup-server.sh" "$venv" | tail -n 1)"

# --interrupt_requests False: by default llama-cpp-python's server cuts a stream off whenever
# another request is waiting (seen as litellm's MidStreamFallbackError)
"$venv/bin/python" -m llama_cpp.server --model "$gguf" --host 127.0.0.1 --port "$port" \
  --interrupt_requests False --n_ctx 2048 --seed 0 --verbose False >"${TMPDIR:-/tmp}/replaygate-llama-server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
  if "$venv/bin/python" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/v1/models', timeout=2)" 2>/dev/null; then
    break
  fi
  kill -0 "$server" 2>/dev/null || { echo "the model server exited; see ${TMPDIR:-/tmp}/replaygate-llama-server.log" >&2; exit 3; }
  sleep 1
done
set +e
replaygate gate -c "$here/replaygate.yaml" "$@"
rc=$?
set -e
echo "replaygate gate exited $rc"
exit "$rc"
