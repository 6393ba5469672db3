#!/usr/bin/env bash
# GPU calibration rows for the plan (fmdenoise calibrate --device cuda) on a GPU node with a time
# limit: the study's default variants first, no measurement started after BUDGET seconds, the
# table rewritten after each measurement. Needs only torch, numpy and tifffile (no snakemake, no
# install: the package is taken from src/), so it runs in a stock PyTorch image too.
#   bash benchmarks/gpu_calibration.sh OUTDIR [BUDGET]
set -uo pipefail
out=${1:?usage: gpu_calibration.sh OUTDIR [BUDGET]}
budget=${2:-420}
mkdir -p "$out"
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
python=${PYTHON:-python3}
{
    date -u
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv || true
    $python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
} 2>&1 | tee "$out/environment.txt"
$python - "$out/calibration.csv" "$budget" <<'PY' 2>&1 | tee "$out/calibrate.log"
import sys
from fmdenoise.costs.calibration import shipped_table
from fmdenoise.plan.calibrate import calibrate_table

print(calibrate_table("cuda", sys.argv[1], shipped_table(), float(sys.argv[2]),
                      lambda m: print(m, flush=True)))
PY
