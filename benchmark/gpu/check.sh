#!/usr/bin/env bash
# One-shot GPU check: our training step (a Rust binary, see prepare.sh) against PyTorch's eager,
# channels-last, bf16-autocast and torch.compile loops at the paper's size, batches 128 and 512,
# with images/s and model FLOP utilisation, after a parity check of ours against PyTorch's fixture.
# Needs only a Python with torch 2.11 (CUDA): no network, no Node, no Rust.
#
#   benchmark/gpu/check.sh [--python /opt/torch/.venv/bin/python] [--device cuda] [--out DIR] [check.py options]
#   (without --python: /opt/torch/.venv/bin/python, else a python3 on PATH that imports torch)
#   benchmark/gpu/check.sh --python ~/.cache/dcgan/torch-2.11.0/bin/python --device cpu --quick   # a test here
#
# Run from the folder prepare.sh stages (bin/, fixtures/, reference/ beside this file) or from the
# repository (the binary from the cargo target dir, or --binary PATH). Exit status 1 when our parity
# with PyTorch fails, 2 when something is missing. See check.py --help for every option.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON=""
BINARY=""
DEVICE="cuda"
PASS=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --python) PYTHON="$2"; shift 2 ;;
    --binary) BINARY="$2"; shift 2 ;;
    --device) DEVICE="$2"; shift 2 ;;
    *) PASS+=("$1"); shift ;;
  esac
done

fail() { echo "check.sh: $*" >&2; exit 2; }
# The first path that exists, or nothing (status 0 either way: `set -e` would end the script on
# an assignment from a failing command substitution).
first_existing() { for p in "$@"; do [[ -e "$p" ]] && { echo "$p"; return 0; }; done; return 0; }

# Without --python: the lent GPU machines' venv, else a python3 on PATH that imports torch.
if [[ -z "$PYTHON" ]]; then
  for candidate in /opt/torch/.venv/bin/python "$(command -v python3 || true)"; do
    if [[ -n "$candidate" && -x "$candidate" ]] && "$candidate" -c 'import torch' 2>/dev/null; then
      PYTHON="$candidate"
      echo "check.sh: using $PYTHON (give --python to choose)" >&2
      break
    fi
  done
fi
[[ -n "$PYTHON" ]] || fail "give --python PATH: a Python with torch 2.11 (e.g. /opt/torch/.venv/bin/python)"
[[ -x "$PYTHON" ]] || fail "--python $PYTHON is not an executable"
TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/dcgan/target}"
BINARY="${BINARY:-$(first_existing "$HERE/bin/gpu_check" "$TARGET_DIR/release/examples/gpu_check")}"
FIXTURE="$(first_existing "$HERE/fixtures/seed64" "$HERE/../../__test__/fixtures/seed64")"
DDP_FIXTURE="$(first_existing "$HERE/fixtures/ddp32" "$HERE/../../__test__/fixtures/ddp32")"
REFERENCE="$(first_existing "$HERE/reference" "$HERE/../reference")"
[[ -n "$BINARY" && -x "$BINARY" ]] || fail "no gpu_check binary: run benchmark/gpu/prepare.sh on a machine with Rust, or give --binary"
[[ -n "$FIXTURE" ]] || fail "no fixtures/seed64 beside check.sh nor __test__/fixtures/seed64"
[[ -n "$DDP_FIXTURE" ]] || fail "no fixtures/ddp32 beside check.sh nor __test__/fixtures/ddp32"
[[ -n "$REFERENCE" ]] || fail "no reference/ (dcgan.py, variants.py, bench_worker.py) beside check.sh nor benchmark/reference"

# The binary links libtorch without a path to it: use the libraries of this machine's torch.
TORCH_LIB="$("$PYTHON" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')" \
  || fail "$PYTHON cannot import torch"
TORCH_VERSION="$("$PYTHON" -c 'import torch; print(torch.__version__)')"
[[ "$TORCH_VERSION" == 2.11.0* ]] || echo "check.sh: warning: torch $TORCH_VERSION; the binary was built against 2.11.0" >&2
export LD_LIBRARY_PATH="$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# CUDA graph capture (the ours+graph rows and a parity run) needs this library from prepare.sh.
GRAPH_LIB="$(first_existing "$HERE/lib/libdcgan_cuda_graph.so")"
if [[ -n "$GRAPH_LIB" ]]; then
  export DCGAN_CUDA_GRAPH_LIB="$GRAPH_LIB"
else
  echo "check.sh: no lib/libdcgan_cuda_graph.so beside check.sh: the CUDA graph rows will say so" >&2
fi

# Fails here, with the loader's message, when a library the binary needs is missing.
if ! "$BINARY" >/dev/null 2>"${TMPDIR:-/tmp}/gpu_check_probe.$$"; then
  if grep -q "error while loading shared libraries\|not found" "${TMPDIR:-/tmp}/gpu_check_probe.$$"; then
    cat "${TMPDIR:-/tmp}/gpu_check_probe.$$" >&2
    rm -f "${TMPDIR:-/tmp}/gpu_check_probe.$$"
    fail "the binary cannot start with LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
  fi
fi
rm -f "${TMPDIR:-/tmp}/gpu_check_probe.$$"

BF16_FIXTURES="$(first_existing "$HERE/fixtures/bf16" "$HERE/../../__test__/fixtures/bf16")"
if [[ -n "$BF16_FIXTURES" ]]; then PASS+=(--bf16-fixtures "$BF16_FIXTURES"); fi

# The Node check (node/, staged by prepare.sh): the addon finds libtorch through its RUNPATH,
# $ORIGIN/libtorch/lib, as in an npm install; here that is this machine's torch, linked beside a
# copy of node/ in a temporary folder (the stage itself stays free of links).
if [[ -e "$HERE/node/dist/node-check.cjs" ]]; then
  NODE_DIR="$(mktemp -d "${TMPDIR:-/tmp}/dcgan-node-check.XXXXXX")/node"
  if cp -r "$HERE/node" "$NODE_DIR" && ln -sfn "$(dirname "$TORCH_LIB")" "$NODE_DIR/libtorch"; then
    PASS+=(--node-check "$NODE_DIR/dist/node-check.cjs")
  else
    echo "check.sh: cannot prepare $NODE_DIR with a link to this machine's torch: no Node check" >&2
  fi
fi

exec "$PYTHON" "$HERE/check.py" --binary "$BINARY" --fixture "$FIXTURE" --ddp-fixture "$DDP_FIXTURE" --reference-dir "$REFERENCE" \
  --device "$DEVICE" "${PASS[@]+"${PASS[@]}"}"
