"""The GPU measurements of issue 35, in one run under a time budget (the device is lent for
minutes): for each architecture at full size, bf16, batch 8 x 128 px,

1. calibration rows: one training step eager and compiled block by block
   (:func:`fmdenoise.plan.calibrate.train_step`, what ``fmdenoise calibrate`` measures), and
   for KBNet the former per-pixel matmul mixing beside the multiply-then-sum;
2. the train rule's own code path: :func:`fmdenoise.train.loop.train` (the job's entry point:
   the loader, validation every 100 steps on the device, background checkpoints, run.json)
   for ``--steps`` steps on synthetic patches, its s/step against the calibration row (the
   plan prices from the row: they must agree within 1.3x), model FLOPs utilisation and peak
   GPU memory;
3. several runs on one GPU: N = 1, 2, 4, 8 training processes at once (for the models a single
   run leaves the GPU idle: ``--concurrent``), their aggregate steps/s against one run.

Measurements run in order of importance and none starts after ``--budget`` seconds; each result
is printed as it comes and all of them are written to ``OUTDIR/gpu_round.json``. Runs from
``src/`` with the machine's torch (``benchmarks/gpu_round.sh`` sets that up); ``--quick`` runs
the same code on the CPU at the demo's model sizes, which is how it is tested before a lease.

    python benchmarks/gpu_round.py OUTDIR [--budget 480] [--steps 300] [--quick]
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import yaml

from fmdenoise.data.synthetic import write_toy_patches
from fmdenoise.models.size import FULL_SIZE, gflop_forward
from fmdenoise.plan.calibrate import train_step
from fmdenoise.settings import (
    ModelSettings,
    NoiseLevelSettings,
    PretrainedSettings,
    TrainingSettings,
)

ARCHS = ("kbnet", "restormer", "drunet", "care_unet")
#: dense bf16 peak of the H100/H200 SXM (the MFU's denominator)
PEAK_TFLOPS = 989.0
QUICK_SIZES = {  # the demo's model sizes (demo/config.yaml)
    m["arch"]: m["kwargs"]
    for m in yaml.safe_load((Path(__file__).parents[1] / "demo" / "config.yaml").read_text())[
        "models"
    ].values()
}


def training(steps: int, batch: int, compile_: bool) -> TrainingSettings:
    return TrainingSettings(
        steps=steps, batch_size=batch, optimizer="adamw", weight_decay=0.0, schedule="cosine",
        grad_clip=None, val_every=100, checkpoint_every=100, patience=None,
        ssim_l1_weight=0.84, compile=compile_,
    )  # fmt: skip


def model(arch: str, quick: bool) -> ModelSettings:
    kwargs = QUICK_SIZES[arch] if quick else FULL_SIZE[arch]
    return ModelSettings(
        arch, kwargs, PretrainedSettings("none", "fmdenoise"), NoiseLevelSettings("fixed", 0.1)
    )


def train_path(arch: str, patches: Path, out: Path, steps: int, batch: int, compile_: bool,
               quick: bool) -> dict[str, Any]:  # fmt: skip
    """The train job's code path for ``steps`` steps; s/step from run.json (compilation, the
    validations and the checkpoints included, as a job spends them) and from the curve's
    seconds between the first and the last validation (steady state)."""
    from fmdenoise.train.loop import train
    from fmdenoise.train.setup import Cell

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    cell = Cell(arch, "gpu-round", "mae", 1e-4, "scratch", "none", 0)
    t = time.perf_counter()
    run = train(cell, model(arch, quick), training(steps, batch, compile_), patches, out,
                threads=4, checkpoint_minutes=10.0)  # fmt: skip
    wall = time.perf_counter() - t
    import pandas as pd

    curve = pd.read_csv(out / "curve.csv")
    steady = curve[curve.step >= min(100, int(curve.step.iloc[-1]))]
    span = steady.step.iloc[-1] - steady.step.iloc[0]
    steady_s = (steady.seconds.iloc[-1] - steady.seconds.iloc[0]) / span if span else math.nan
    peak = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
    return {"s_per_step_job": wall / steps, "s_per_step_steady": steady_s, "wall_s": wall,
            "peak_gpu_mb": peak, "device": run["device"]}  # fmt: skip


def concurrent(arch: str, patches: Path, out: Path, steps: int, batch: int, n: int,
               quick: bool) -> float:  # fmt: skip
    """Aggregate steps/s of ``n`` training processes at once on the one device."""
    code = (
        "import sys, json; sys.path.insert(0, {src!r}); sys.path.insert(0, {bench!r});"
        "from pathlib import Path; import gpu_round as g;"
        "print(json.dumps(g.train_path({arch!r}, Path({patches!r}), Path(sys.argv[1]), {steps},"
        " {batch}, False, {quick})))"
    ).format(src=str(Path(__file__).parents[1] / "src"), bench=str(Path(__file__).parent),
             arch=arch, patches=str(patches), steps=steps, batch=batch, quick=quick)  # fmt: skip
    t = time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(out / f"n{n}-{i}")], stdout=subprocess.PIPE, text=True
        )
        for i in range(n)
    ]
    for p in procs:
        p.communicate()
        if p.returncode:
            raise RuntimeError(f"a concurrent run of {arch} failed")
    return n * steps / (time.perf_counter() - t)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir")
    parser.add_argument("--budget", type=float, default=480.0)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--patch", type=int, default=128)
    parser.add_argument("--quick", action="store_true", help="CPU, demo sizes (a test)")
    parser.add_argument(
        "--concurrent",
        default="drunet,care_unet",
        help="models whose N-runs-per-GPU throughput is measured",
    )
    args = parser.parse_args()
    out = Path(args.outdir)
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device("cpu" if args.quick or not torch.cuda.is_available() else "cuda")
    start = time.perf_counter()
    results: dict[str, Any] = {"torch": torch.__version__, "device": str(device),
                               "batch": args.batch, "patch": args.patch, "runs": []}  # fmt: skip
    if device.type == "cuda":
        results["gpu"] = torch.cuda.get_device_name(device)

    def record(kind: str, arch: str, **values: Any) -> None:
        row = {"kind": kind, "arch": arch, **values}
        results["runs"].append(row)
        print(json.dumps(row), flush=True)
        (out / "gpu_round.json").write_text(json.dumps(results, indent=1))

    def left() -> bool:
        return time.perf_counter() - start < args.budget

    precision = "bf16" if device.type == "cuda" else "fp32"
    patches = write_toy_patches(Path(tempfile.mkdtemp()) / "patches", 2048, args.patch, n_val=64)
    steps = 3 if args.quick else 20
    calib: dict[str, float] = {}
    for arch in ARCHS:  # 1. calibration rows, eager then compiled
        for compile_ in (False, True):
            if not left():
                break
            row = train_step(arch, args.batch, args.patch, device, steps, precision,
                             compile_model=compile_) if not args.quick else {
                "value": _quick_step(arch, args.batch, args.patch, compile_)}  # fmt: skip
            calib[f"{arch}{'-compiled' if compile_ else ''}"] = row["value"]
            flop = 3 * _gflop(arch, args.quick) * (args.patch / 128) ** 2 * args.batch * 1e9
            mfu = flop / row["value"] / (PEAK_TFLOPS * 1e12)
            record("calibration", arch, compiled=compile_, s_per_step=row["value"], mfu=mfu,
                   note=row.get("note"))  # fmt: skip
        if arch == "kbnet" and left():
            record("kbnet-mixing", arch, **_mixing(device, args.batch, args.patch, args.quick))
    for arch in ARCHS:  # 2. the train rule's code path, at the faster variant
        if not left():
            break
        compile_ = calib.get(f"{arch}-compiled", 1e9) < calib.get(arch, 1e9)
        res = train_path(arch, patches, out / "runs" / arch, 6 if args.quick else args.steps,
                         args.batch, compile_, args.quick)  # fmt: skip
        row_s = calib[f"{arch}-compiled" if compile_ else arch]
        record("train-path", arch, compiled=compile_, **res, calibration_s_per_step=row_s,
               ratio=res["s_per_step_steady"] / row_s)  # fmt: skip
    for arch in [a for a in args.concurrent.split(",") if a]:  # 3. several runs per GPU
        rates = {}
        for n in (1, 2, 4, 8):
            if not left():
                break
            rates[n] = concurrent(arch, patches, out / "concurrent" / arch,
                                  4 if args.quick else 200, args.batch, n, args.quick)  # fmt: skip
        if rates:
            record("concurrent", arch, steps_per_s=rates,
                   gain={n: r / rates[1] for n, r in rates.items()})  # fmt: skip
    results["seconds"] = time.perf_counter() - start
    (out / "gpu_round.json").write_text(json.dumps(results, indent=1))


def _gflop(arch: str, quick: bool) -> float:
    return gflop_forward(arch, QUICK_SIZES[arch] if quick else FULL_SIZE[arch])


def _quick_step(arch: str, batch: int, patch: int, compile_: bool) -> float:
    """A training step at the demo's size on the CPU (the calibration's code at full size)."""
    from fmdenoise.models import build
    from fmdenoise.models.wrapper import Denoiser
    from fmdenoise.train.compile import compile_regions

    net = Denoiser(build(arch, **QUICK_SIZES[arch]), arch, QUICK_SIZES[arch])
    if compile_:
        compile_regions(net.net, arch)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    x = torch.rand(batch, 1, patch, patch)
    for i in range(3):
        if i == 1:
            t = time.perf_counter()
        opt.zero_grad()
        (net(x) - x).abs().mean().backward()
        opt.step()
    return (time.perf_counter() - t) / 2


def _mixing(device: torch.device, batch: int, patch: int, quick: bool) -> dict[str, float]:
    """KBNet's step with the multiply-then-sum and with the former matmul mixing."""
    from fmdenoise.models import build
    from fmdenoise.models.wrapper import Denoiser

    kwargs = QUICK_SIZES["kbnet"] if quick else FULL_SIZE["kbnet"]
    net = Denoiser(build("kbnet", **kwargs), "kbnet", kwargs).to(device)
    net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    x = torch.rand(batch, 1, patch, patch, device=device).contiguous(
        memory_format=torch.channels_last)  # fmt: skip
    out = {}
    for mixing in ("sum", "matmul"):
        for m in net.modules():
            if hasattr(m, "mixing"):
                m.mixing = mixing
        times = []
        for _ in range(4):
            if device.type == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                loss = (net(x).float() - x).abs().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t)
        out[f"s_per_step_{mixing}"] = min(times[1:])
    out["matmul_over_sum"] = out["s_per_step_matmul"] / out["s_per_step_sum"]
    return out


if __name__ == "__main__":
    main()
