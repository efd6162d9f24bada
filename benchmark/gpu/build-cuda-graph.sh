#!/usr/bin/env bash
# Builds libdcgan_cuda_graph.so (crates/dcgan-core/csrc/cuda_graph.cpp: CUDA graph capture, which
# needs libtorch_cuda.so and the CUDA runtime's headers, neither of which the addon uses) against
# the CUDA torch 2.11.0 that `npm run setup:python` installs, into OUT_DIR. The CUDA runtime's
# headers come with that torch (nvidia/cu13/include) except crt/, which is NVIDIA's
# nvidia-cuda-crt wheel, fetched once into the cache. Loaded at run time from DCGAN_CUDA_GRAPH_LIB.
#
#   benchmark/gpu/build-cuda-graph.sh OUT_DIR
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
OUT="${1:?give the folder to build libdcgan_cuda_graph.so into}"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/dcgan"
CRT_VERSION=13.0.88 # the CUDA 13.0 toolchain torch 2.11.0+cu130 was built with (its nvrtc)

cd "$ROOT"
PY() { node scripts/with-torch.mjs python "$@"; }
TORCH_DIR="$(PY -c 'import os, torch; print(os.path.dirname(torch.__file__))')"
CUDA_VERSION="$(PY -c 'import torch; print(torch.version.cuda or "")')"
[[ "$CUDA_VERSION" == 13.* ]] || { echo "build-cuda-graph.sh: the torch in $TORCH_DIR is not a CUDA 13 build (torch.version.cuda: '$CUDA_VERSION')" >&2; exit 2; }
CUDA_INCLUDE="$(dirname "$TORCH_DIR")/nvidia/cu13/include"
[[ -f "$CUDA_INCLUDE/cuda_runtime_api.h" ]] || { echo "build-cuda-graph.sh: no CUDA runtime headers in $CUDA_INCLUDE" >&2; exit 2; }

CRT="$CACHE/nvidia-cuda-crt-$CRT_VERSION"
if [[ ! -f "$CRT/nvidia/cu13/include/crt/host_config.h" ]]; then
  rm -rf "$CRT.tmp" && mkdir -p "$CRT.tmp"
  PY -m pip download --quiet --no-deps -d "$CRT.tmp" "nvidia-cuda-crt==$CRT_VERSION"
  PY -m zipfile -e "$CRT.tmp"/nvidia_cuda_crt-*.whl "$CRT.tmp/x"
  rm -rf "$CRT" && mv "$CRT.tmp/x" "$CRT" && rm -rf "$CRT.tmp"
fi

mkdir -p "$OUT"
g++ -std=c++17 -O2 -fPIC -shared \
  -I"$TORCH_DIR/include" -I"$TORCH_DIR/include/torch/csrc/api/include" -I"$CUDA_INCLUDE" -I"$CRT/nvidia/cu13/include" \
  crates/dcgan-core/csrc/cuda_graph.cpp -o "$OUT/libdcgan_cuda_graph.so" \
  -L"$TORCH_DIR/lib" -ltorch_cuda -lc10_cuda -ltorch_cpu -lc10
echo "built $OUT/libdcgan_cuda_graph.so against $TORCH_DIR (CUDA $CUDA_VERSION)"
