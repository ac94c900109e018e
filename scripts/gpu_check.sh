#!/usr/bin/env bash
# On a machine with a CUDA GPU: run the CUDA tests and measure diffusion throughput on 28x28
# images. Prints everything to stdout; writes $OUT/gpu_check.txt when $OUT is set.
set -euo pipefail
cd "$(dirname "$0")/.."
log="${OUT:-/tmp}/gpu_check.txt"
{
    nvidia-smi --query-gpu=name,memory.total --format=csv
    python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
    python -m pytest -m cuda tests/test_cuda.py -q -p no:cacheprovider
    python benchmarks/bench_scale.py --device cuda --image-size 28
} 2>&1 | tee "$log"
