#!/usr/bin/env bash
# Runs kernels on the CPU — each block's threads as OS threads with real barriers, warp shuffles
# and votes, atomics under a lock — against plain references: the flash attention kernels, SIMT
# and tensor-core (kernels/src/flash_attention_*.cu; mma.sync, ldmatrix and cp.async emulated as
# warp collectives by mma.cuh here; Hopper's wgmma as warpgroup collectives by wgmma.cuh), against
# the op's semantics in double, and the 4-bit
# dequantisation kernel (dequantize_4bit.cu) bit for bit against a loop over the values, under
# AddressSanitizer. It checks the kernels' logic (tiling, masks, tile skipping, fully masked rows,
# GQA, dtypes, strided layouts; tile indexing, tails, scales) where no GPU is; it says
# nothing of speed or of the memory model.
# Usage: bash kernels/dev/sim/run.sh [case index]   (flash attention, all cases ~10 min, then dequantisation)
#        bash kernels/dev/sim/run.sh dequant        (the dequantisation check alone, ~1 min)
#        bash kernels/dev/sim/run.sh philox         (philox.cuh against Random123's vectors and the host's values, seconds)
#        bash kernels/dev/sim/run.sh wgmma          (wgmma.cuh's emulation here against products in double, seconds)
#        bash kernels/dev/sim/run.sh tma            (tma.cuh's emulation here: dev/lab/tma_pipeline.cuh's TMA pipeline and its misuses, ~1 min)
#        bash kernels/dev/sim/run.sh hopper [case]  (flash attention as on a Hopper: the warp-specialised TMA kernels where they take the case)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ "${1:-}" = philox ]; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  g++ -std=c++17 -O1 -I"$here/../../src" "$here/philox_check.cpp" -o "$work/philox"
  "$work/philox"
  exit
fi
if [ "${1:-}" = wgmma ]; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  g++ -std=c++20 -O1 -w -pthread -I"$here" "$here/wgmma_check.cpp" -o "$work/wgmma"
  "$work/wgmma"
  exit
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 "$here/transform.py" "$here/../../src" "$work"
if [ "${1:-}" = tma ]; then
  g++ -std=c++20 -O1 -w -Wno-psabi -pthread -I"$here" -I"$work" "$here/tma_check.cpp" -o "$work/tma"
  "$work/tma"
  exit
fi
if [ "${1:-}" != dequant ]; then
  g++ -std=c++20 -O1 -w -pthread -I"$here" -I"$work" "$here/flash_attention_check.cpp" -o "$work/check"
  "$work/check" "$@"
fi
[ "${1:-}" = hopper ] && exit
if [ $# -eq 0 ] || [ "$1" = dequant ]; then
  g++ -std=c++20 -O1 -w -pthread -fsanitize=address -I"$here" -I"$work" "$here/dequantize_check.cpp" -o "$work/dequant"
  "$work/dequant"
fi
