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
