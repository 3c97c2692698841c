#!/usr/bin/env bash
# Builds the attention_lab program of kernels/dev/lab/attention_lab.cu (which says what it does) from the attention
# sources alone, for the machine's GPU: bash kernels/dev/lab/build.sh [out folder] [source folder]
# (the sources default to kernels/src; a copy with a kernel variant can stand in for them), and on
# Hopper tma_probe (tma_probe.cu: tma.cuh's loads, barriers and setmaxnreg checked on the GPU).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/out}
src=${2:-$here/../../src}
mkdir -p "$out"
arch=${LAB_ARCH:-90a}  # the GPU to build for (80: Ampere, 90a: Hopper)
flags=(-O3 -std=c++17 --expt-relaxed-constexpr -lineinfo -gencode=arch=compute_$arch,code=sm_$arch -I"$src")
# Each source compiled on its own, all at once (the attention kernels take most of a minute each), then linked.
objects=()
for f in "$here/attention_lab.cu" "$src"/flash_attention*.cu "$src"/context.cu "$src"/primitives.cpp "$src"/profile.cpp; do
  o="$out/$(basename "$f").o"
  objects+=("$o")
  nvcc "${flags[@]}" -c "$f" -o "$o" &
done
for job in $(jobs -p); do wait "$job"; done
nvcc "${flags[@]}" "${objects[@]}" -o "$out/attention_lab"
if [ "$arch" = 90a ]; then
  nvcc -O3 -std=c++17 --expt-relaxed-constexpr -lineinfo -gencode=arch=compute_90a,code=sm_90a \
    -I"$src" "$here/tma_probe.cu" "$src"/context.cu -o "$out/tma_probe"
fi
