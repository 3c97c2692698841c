#!/usr/bin/env bash
# Runs the flash attention kernels (kernels/src/flash_attention_*.cu) on the CPU — each block's
# threads as OS threads with real barriers, warp shuffles and votes, atomics under a lock —
# against the op's semantics in double precision. It checks the kernels' logic (tiling, masks,
# tile skipping, fully masked rows, GQA, dtypes) where no GPU is; it says nothing of speed or
# of the memory model. Usage: bash kernels/dev/sim/run.sh [case index]   (all cases: ~10 min on 2 cores)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 "$here/transform.py" "$here/../../src" "$work"
g++ -std=c++20 -O1 -w -pthread -I"$here" -I"$work" "$here/flash_attention_check.cpp" -o "$work/check"
if [ $# -gt 0 ]; then "$work/check" "$1"; else "$work/check"; fi
