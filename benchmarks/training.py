"""Training throughput: the loader, eager vs compiled, and KBNet's two mixing forms.

Runs the real loop (:func:`fmdenoise.train.loop.train`) on the same patches twice per round, once
reading batches from the memory-mapped ``.npy`` files (what the workflow does) and once from
arrays preloaded into memory, alternating, and prints the steps/s of both and the loader
overhead as a fraction (target <= 5 %). With ``--demo`` it also times the demo study's whole
train stage (train, select and studies jobs) through ``snakemake --cores 2`` in a scratch
folder, after building its inputs there (untimed).

With ``--models`` it measures instead, per architecture at the demo's model sizes (batch 8 x
64 px, AdamW, L1; CPU, float32), one training step eager against compiled block by block
(:mod:`fmdenoise.train.compile`; compilation timed apart, and against compiling the whole
network), and KBNet's kernel-basis mixing as a multiply-then-sum (the code's) against the
former per-pixel batched matmul, in channels_last. Rounds alternate the variants, so the
ratios are measured side by side; CPU is a proxy: the GPU rows decide (benchmarks/gpu_round.sh).

    python benchmarks/training.py [--steps 200] [--rounds 3] [--demo]
    python benchmarks/training.py --models [--steps 10] [--rounds 3]
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
import yaml

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


DEMO_SIZES = {  # the demo's model sizes (demo/config.yaml)
    m["arch"]: m["kwargs"]
    for m in yaml.safe_load((Path(__file__).parents[1] / "demo" / "config.yaml").read_text())[
        "models"
    ].values()
}


def step_time(model: torch.nn.Module, steps: int) -> float:
    """Seconds per training step (after one warm-up step) at batch 8 x 64 px."""
    torch.manual_seed(0)
    x = torch.rand(8, 1, 64, 64).contiguous(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def one() -> None:
        opt.zero_grad(set_to_none=True)
        (model(x) - x).abs().mean().backward()
        opt.step()

    one()
    t = time.perf_counter()
    for _ in range(steps):
        one()
    return (time.perf_counter() - t) / steps


def model_variants(steps: int, rounds: int) -> dict:
    """Eager vs compiled per architecture, and KBNet's mixing forms (see the docstring)."""
    import copy

    from fmdenoise.models import build
    from fmdenoise.models.wrapper import Denoiser
    from fmdenoise.train.compile import compile_regions

    out: dict = {}
    for arch, kwargs in DEMO_SIZES.items():
        base = Denoiser(build(arch, **kwargs), arch, kwargs).to(memory_format=torch.channels_last)
        variants = {"eager": base}
        t = time.perf_counter()
        regional = copy.deepcopy(base)
        compile_regions(regional.net, arch)
        step_time(regional, 1)  # compiles (train mode)
        compile_regional = time.perf_counter() - t
        variants["compiled"] = regional
        t = time.perf_counter()
        whole = copy.deepcopy(base)
        whole.net.compile(dynamic=False)
        step_time(whole, 1)
        compile_whole = time.perf_counter() - t
        if arch == "kbnet":
            old = copy.deepcopy(base)
            for m in old.modules():
                if hasattr(m, "mixing"):
                    m.mixing = "matmul"
            variants["matmul mixing"] = old
        times: dict[str, list[float]] = {k: [] for k in variants}
        for _ in range(rounds):
            for name, model in variants.items():
                times[name].append(step_time(model, steps))
        best = {k: min(v) for k, v in times.items()}
        out[arch] = {
            "s_per_step": best,
            "compiled_vs_eager": best["eager"] / best["compiled"],
            "compile_s_regional": compile_regional,
            "compile_s_whole": compile_whole,
        }
        line = (
            f"{arch:10} eager {best['eager'] * 1e3:8.1f} ms  compiled {best['compiled'] * 1e3:8.1f}"
            f" ms  speed-up {best['eager'] / best['compiled']:.2f}x  compile: per block "
            f"{compile_regional:.0f} s, whole {compile_whole:.0f} s"
        )
        if "matmul mixing" in best:
            ratio = best["matmul mixing"] / best["eager"]
            out[arch]["matmul_vs_sum"] = ratio
            line += f"\n{'':10} mixing: matmul {best['matmul mixing'] * 1e3:.1f} ms vs sum "
            line += f"{best['eager'] * 1e3:.1f} ms (eager): the sum is {ratio:.2f}x faster"
        print(line, flush=True)
    return out


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
    parser.add_argument(
        "--models", action="store_true", help="eager vs compiled, KBNet's mixing forms"
    )
    args = parser.parse_args()
    if args.models:
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU, float32, "
              f"batch 8 x 64 px, best of {args.rounds} rounds of {args.steps} steps")  # fmt: skip
        print(json.dumps(model_variants(args.steps, args.rounds)))
        return
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
