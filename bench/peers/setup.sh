#!/usr/bin/env bash
# The benchmark's peers as users install them today: a venv (~/.cache/embedtune/peers/torch)
# from the machine's local Python wheelhouse — PyTorch 2.13, transformers, sentence-transformers,
# faiss-cpu, peft — when the machine has one; Debian's packages (PyTorch 1.13, years older) only
# when it has none. BENCH_TORCH_PYTHON names another interpreter and skips all of this.
# Only `npm run bench` calls this; CI and the tests never do.
set -euo pipefail
[ -n "${BENCH_TORCH_PYTHON:-}" ] && exit 0

VENV="${EMBEDTUNE_HOME:-$HOME/.cache/embedtune}/peers/torch"
PACKAGES=(numpy transformers tokenizers safetensors peft faiss-cpu sentence-transformers datasets bm25s)
IMPORTS="import torch, numpy, transformers, tokenizers, safetensors, peft, faiss, sentence_transformers, datasets, bm25s"

# Every PEP 503 index on local disk (a machine may have several; the first is the main one) and
# the torch wheel beside them.
mapfile -t indexes < <(find / -maxdepth 3 -type d -name simple -path '*pypi*' 2>/dev/null | sort)
wheel=$(find / -maxdepth 3 -name 'torch-2.13*.whl' 2>/dev/null | sort | tail -1)

if [ -n "$wheel" ] && [ ${#indexes[@]} -gt 0 ]; then
  if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "$IMPORTS" 2>/dev/null; then exit 0; fi
  echo "bench: peer venv $VENV from $wheel and ${indexes[*]}" >&2
  [ -x "$VENV/bin/python" ] || /usr/bin/python3 -m venv "$VENV"
  args=()
  for i in "${indexes[@]}"; do args+=("$([ ${#args[@]} -eq 0 ] && echo --index-url || echo --extra-index-url)" "file://$i"); done
  "$VENV/bin/pip" install -q "${args[@]}" "$wheel" "${PACKAGES[@]}" 2>&1 | grep -v "is ignored: it is neither a file nor a directory" >&2 || true
  "$VENV/bin/python" -c "$IMPORTS"
  exit 0
fi

echo "bench: no local wheelhouse; falling back to Debian's python3-torch / python3-faiss (years older than what users run)" >&2
need=()
/usr/bin/python3 -c 'import torch' 2>/dev/null || need+=(python3-torch)
/usr/bin/python3 -c 'import faiss' 2>/dev/null || need+=(python3-faiss)
/usr/bin/python3 -c 'import numpy' 2>/dev/null || need+=(python3-numpy)
dpkg -s libopenblas-dev >/dev/null 2>&1 || need+=(libopenblas-dev)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
