#!/usr/bin/env bash
# Issue 35's GPU measurements in one prepared run (benchmarks/gpu_round.py): calibration rows
# eager and compiled per block, KBNet's two mixing forms, the train rule's own code path for a
# few hundred steps per model against its calibration row, and N training runs per GPU. No
# install: the package is taken from src/ and the image's torch, pandas, scikit-image and
# tifffile are used (the device tool's image has them). Ends within BUDGET seconds plus the
# measurement in flight; results in OUTDIR/gpu_round.json and OUTDIR/environment.txt.
#   bash benchmarks/gpu_round.sh OUTDIR [BUDGET]
# With the device tool (15 minutes of device time, start-up included):
#   run(command="bash benchmarks/gpu_round.sh $OUT 420", timeout_s=560)
set -uo pipefail
out=${1:?usage: gpu_round.sh OUTDIR [BUDGET]}
budget=${2:-420}
mkdir -p "$out"
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
export TORCHINDUCTOR_CACHE_DIR=${TORCHINDUCTOR_CACHE_DIR:-/tmp/fmdenoise-inductor}
python=${PYTHON:-python3}
{
    date -u
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv || true
    $python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
    git log -1 --format='commit %H' 2>/dev/null || true
} 2>&1 | tee "$out/environment.txt"
$python benchmarks/gpu_round.py "$out" --budget "$budget" 2>&1 | grep -v " INFO " | tee "$out/gpu_round.log"
