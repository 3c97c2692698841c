"""Copies the kernel sources the simulation compiles (argv[1] = kernels/src, argv[2] = output
folder) — not mma.cuh, wgmma.cuh and tma.cuh, whose inline PTX the simulation replaces with its own emulation —
rewriting the two CUDA-only constructs a host compiler cannot parse: launches
(kernel<<<grid, block, smem, stream()>>>(params) → simLaunch(...)) and shared memory
(__shared__ → static: blocks run one after another, so a static is one block's shared memory;
the dynamic `extern __shared__` array → the simulated block's buffer)."""
import os
import re
import sys

src, out = sys.argv[1], sys.argv[2]
# Every attention source (flash_attention*, wgmma*, tma*) is copied, so that a new kernel file is
# too; not mma.cuh, wgmma.cuh and tma.cuh: the simulation has its own (beside this file).
EMULATED = {'mma.cuh', 'wgmma.cuh', 'tma.cuh'}
FILES = ['common.h', 'kernels.h', 'memory.h', 'primitives.h', 'profile.h', 'primitives.cpp', 'vec_io.cuh', 'dequantize_4bit.cu'] + sorted(
    name for name in os.listdir(src) if name.startswith(('flash_attention', 'wgmma', 'tma')) and name not in EMULATED)
LAUNCH = re.compile(r'([\w:]+(?:<[^<>]*>)?)<<<((?:[^,()]|\([^()]*\))+),\s*([^,]+),\s*([^,]+),\s*stream\(\)>>>\((\w+)\)')
for name in FILES:
    text = open(f'{src}/{name}').read()
    text = text.replace('extern __shared__ float smem[];', 'float* smem = simDynamicSmem();').replace('__shared__', 'static')
    text = LAUNCH.sub(r'simLaunch(\1, dim3(\2), dim3(\3), \4, \5)', text)
    if '<<<' in text:
        sys.exit(f'{name}: a launch the simulation cannot rewrite')
    open(f'{out}/{name}', 'w').write(text)
