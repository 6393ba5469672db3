"""Training-loop throughput: memory-mapped patch loader versus tensors already in memory.

Runs the real loop (:func:`fmdenoise.train.loop.train`) on the same patches twice per round, once
reading batches from the memory-mapped ``.npy`` files (what the workflow does) and once from
arrays preloaded into memory, alternating, and prints the steps/s of both and the loader
overhead as a fraction (target <= 5 %). With ``--demo`` it also times the demo study's whole
train stage (train, select and studies jobs) through ``snakemake --cores 2`` in a scratch
folder, after building its inputs there (untimed).

    python benchmarks/training.py [--steps 200] [--rounds 3] [--demo]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from fmdenoise.data.synthetic import write_toy_patches
from fmdenoise.settings import (
    ModelSettings,
    NoiseLevelSettings,
    PretrainedSettings,
    TrainingSettings,
)
from fmdenoise.train.loop import train
from fmdenoise.train.setup import Cell

ROOT = Path(__file__).resolve().parents[1]
MODEL = ModelSettings(
    "drunet",
    {"nc": [16, 32, 64, 128], "nb": 1},
    PretrainedSettings("none", "fmdenoise"),
    NoiseLevelSettings("estimate", 0.1, None),
)


def loop_rate(patches: Path, out: Path, steps: int, preload: bool, threads: int) -> float:
    training = TrainingSettings(
        steps=steps,
        batch_size=8,
        optimizer="adam",
        weight_decay=0.0,
        schedule="constant",
        grad_clip=None,
        val_every=steps,
        checkpoint_every=steps,
        patience=None,
        ssim_l1_weight=0.84,
        compile=False,
    )
    shutil.rmtree(out, ignore_errors=True)
    cell = Cell("drunet", "bench", "mae", 1e-3, "scratch", "rot", 0)
    run = train(cell, MODEL, training, patches, out, threads=threads, preload=preload)
    return steps / run["wall_seconds"]


def demo_train_stage(work: Path) -> tuple[float, int]:
    base = [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(ROOT / "Snakefile"),
        "--directory",
        str(work),
        "--configfile",
        str(ROOT / "demo" / "config.yaml"),
        "--cores",
        "2",
    ]
    cfg_models = ["drunet", "restormer", "kbnet"]
    datasets = ["actin-demo", "mito-demo", "nucleus-demo"]
    prereq = [f"results/demo/patches/{d}/patches.json" for d in datasets]
    prereq += [f"results/demo/pretrained/{m}.pt" for m in cfg_models]
    subprocess.run(base + prereq, check=True, capture_output=True)
    t = time.perf_counter()
    subprocess.run(base, check=True, capture_output=True)
    wall = time.perf_counter() - t
    return wall, len(list((work / "results" / "demo" / "runs").rglob("run.json")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--demo", action="store_true", help="also time the demo's train stage")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        patches = write_toy_patches(Path(tmp) / "patches", 4096, 64, n_val=16)
        rates: dict[str, list[float]] = {"mmap": [], "memory": []}
        for _ in range(args.rounds):
            for mode in ("mmap", "memory"):
                rates[mode].append(
                    loop_rate(patches, Path(tmp) / mode, args.steps, mode == "memory", args.threads)
                )
        best = {k: max(v) for k, v in rates.items()}
        overhead = best["memory"] / best["mmap"] - 1
        print(
            f"torch {torch.__version__}, {args.threads} threads; DRUNet {MODEL.kwargs}, "
            f"batch 8 x 64x64, {args.steps} steps, best of {args.rounds}"
        )
        for mode, values in rates.items():
            print(
                f"  {mode:7} steps/s: "
                + ", ".join(f"{v:.2f}" for v in values)
                + f"  (best {best[mode]:.2f})"
            )
        verdict = "meets" if overhead <= 0.05 else "MISSES"
        print(
            f"loader overhead (memory-mapped vs in-memory): {overhead:+.1%}  "
            f"{verdict} the target <= 5%"
        )
        if args.demo:
            wall, n = demo_train_stage(Path(tmp) / "demo")
            print(
                f"demo study train stage (train + select + studies, snakemake --cores 2): "
                f"{wall:.0f} s wall for {n} training runs"
            )
    print(json.dumps({"steps_per_s": best, "overhead": overhead}))


if __name__ == "__main__":
    main()
