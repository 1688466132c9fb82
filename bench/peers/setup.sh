#!/usr/bin/env bash
# Installs the benchmark's peers from Debian's packages: PyTorch CPU, faiss, OpenBLAS (numpy's
# BLAS once installed). Only `npm run bench` calls this; CI and the tests never do.
set -euo pipefail
need=()
/usr/bin/python3 -c 'import torch' 2>/dev/null || need+=(python3-torch)
/usr/bin/python3 -c 'import faiss' 2>/dev/null || need+=(python3-faiss)
/usr/bin/python3 -c 'import numpy' 2>/dev/null || need+=(python3-numpy)
dpkg -s libopenblas-dev >/dev/null 2>&1 || need+=(libopenblas-dev)
if [ ${#need[@]} -gt 0 ]; then
  echo "bench: installing ${need[*]}" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

# The bge-m3 case measures against current PyTorch (2.13), not Debian's years-old build: a venv
# from the machine's local wheelhouse when it has one (BENCH_TORCH_PYTHON overrides).
VENV="${EMBEDTUNE_HOME:-$HOME/.cache/embedtune}/peers/torch"
if [ -z "${BENCH_TORCH_PYTHON:-}" ] && [ ! -x "$VENV/bin/python" ]; then
  wheel=$(find / -maxdepth 3 -name 'torch-2.13*.whl' 2>/dev/null | sort | tail -1)
  # The local index that carries transformers (a machine may have several).
  index=""
  for i in $(find / -maxdepth 3 -name simple -path '*pypi*' 2>/dev/null | sort); do
    [ -d "$i/transformers" ] && { index=$i; break; }
  done
  if [ -n "$wheel" ] && [ -n "$index" ]; then
    echo "bench: PyTorch venv from $wheel" >&2
    /usr/bin/python3 -m venv "$VENV"
    # transformers / tokenizers / peft: the Qwen3 and LoRA peers, and the fixtures' references.
    "$VENV/bin/pip" install -q --index-url "file://$index" "$wheel" numpy transformers tokenizers safetensors peft
  else
    echo "bench: no local torch wheelhouse; the bge-m3 case uses /usr/bin/python3's torch" >&2
  fi
elif [ -x "$VENV/bin/python" ] && ! "$VENV/bin/python" -c 'import transformers, tokenizers, peft' 2>/dev/null; then
  # A venv from before the Qwen3 / LoRA peers: add them.
  for i in $(find / -maxdepth 3 -name simple -path '*pypi*' 2>/dev/null | sort); do
    [ -d "$i/transformers" ] && { "$VENV/bin/pip" install -q --index-url "file://$i" transformers tokenizers safetensors peft; break; }
  done
fi
