"""Calibration measurements: what one training step and one megapixel of inference cost here.

Each measurement runs in a fresh Python process (``python -m fmdenoise.plan.calibrate KIND ...``)
so that its peak resident memory (``ru_maxrss``) is its own; on CUDA the peak GPU memory is
``torch.cuda.max_memory_allocated``. The rows it prints are those of the calibration table
(:mod:`fmdenoise.costs.calibration`): ``kind`` train (seconds per optimisation step at a
batch and patch size), infer (seconds per megapixel of whole-image or tiled inference), rule
(seconds per megapixel of ingest, patches, metrics) and the forward GFLOP of each architecture
at 128x128, from which GPU figures that were not measured are estimated.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fmdenoise import device as dev
from fmdenoise.models import build
from fmdenoise.models.size import FULL_SIZE, gflop_forward, parameter_count
from fmdenoise.models.wrapper import Denoiser
from fmdenoise.process import prefer_huge_pages
from fmdenoise.settings import NormalizationSettings, PatchSettings


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what :mod:`platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def _device_row(device: torch.device) -> dict[str, Any]:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
    return {
        "device_type": device.type,
        "device": name or "cpu",
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


def _peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return _peak_rss_mb()


def train_step(
    arch: str,
    batch: int,
    patch: int,
    device: torch.device,
    steps: int,
    precision: str,
    channels_last: bool = True,
    compile_model: bool = False,
) -> dict[str, Any]:
    """Seconds per AdamW step (L1 loss) of the full-size model, after two warm-up steps (which
    also absorb ``torch.compile``'s compilation: block by block, as the training loop compiles,
    :mod:`fmdenoise.train.compile`; its seconds go into the note). The optimizer is fused on
    CUDA, as in training."""
    from fmdenoise.train.compile import compile_regions

    torch.manual_seed(0)
    wrapped = Denoiser(build(arch, **FULL_SIZE[arch]), arch, FULL_SIZE[arch], None)
    wrapped = dev.prepare(wrapped, device, channels_last)
    opt = torch.optim.AdamW(
        wrapped.parameters(), lr=1e-4, fused=True if device.type == "cuda" else None
    )
    if compile_model:
        compile_regions(wrapped.net, arch)
    model = wrapped
    x = torch.rand(batch, 1, patch, patch, device=device)
    x = x.contiguous(memory_format=dev.memory_format(device, channels_last))
    y = torch.rand(batch, 1, patch, patch, device=device)
    autocast = dev.autocast(device) if precision == "bf16" else torch.autocast("cpu", enabled=False)

    def one() -> None:
        with autocast:
            pred = model(x)
        loss = torch.nn.functional.l1_loss(pred.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    warm = time.perf_counter()
    one()
    one()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    warm_s = time.perf_counter() - warm
    start = time.perf_counter()
    for _ in range(steps):
        one()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = (time.perf_counter() - start) / steps
    variant = ("channels_last" if channels_last else "nchw") + (
        f", compiled (per block, {warm_s:.0f} s to compile)" if compile_model else ""
    )
    return {"value": seconds, "unit": "s/step", "batch": batch, "patch": patch, "note": variant}


def inference(
    arch: str, size: int, tile: int | None, device: torch.device, repeats: int
) -> dict[str, Any]:
    """Seconds per megapixel of :func:`denoise_array` on a ``size`` x ``size`` image."""
    from fmdenoise.evaluate.inference import denoise_array

    torch.manual_seed(0)
    model = dev.prepare(
        Denoiser(build(arch, **FULL_SIZE[arch]), arch, FULL_SIZE[arch], None), device
    ).eval()
    image = np.random.default_rng(0).random((size, size), dtype=np.float32) * 100
    denoise_array(model, image, tile=tile, device=device)  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        denoise_array(model, image, tile=tile, device=device)
    seconds = (time.perf_counter() - start) / repeats
    return {"value": seconds / (size * size / 1e6), "unit": "s/Mpx", "mpx": size * size / 1e6}


def bm3d(size: int) -> dict[str, Any]:
    """Seconds per megapixel of the study's BM3D baseline (one CPU thread)."""
    from fmdenoise.evaluate.predict import bm3d_denoise

    image = np.random.default_rng(0).poisson(20, (size, size)).astype(np.float32)
    start = time.perf_counter()
    bm3d_denoise(image, 0.1, 99.9)
    seconds = time.perf_counter() - start
    return {"value": seconds / (size * size / 1e6), "unit": "s/Mpx", "mpx": size * size / 1e6}


def data_rules(size: int, pairs: int) -> list[dict[str, Any]]:
    """Seconds per megapixel (of low + ground-truth pixels) of ingest, patches and metrics on a
    synthetic stack source of ``pairs`` ``size`` x ``size`` pairs."""
    import tifffile

    from fmdenoise.data.ingest import ingest_dataset
    from fmdenoise.data.patches import build_patches
    from fmdenoise.evaluate.metrics import evaluate_dataset

    rng = np.random.default_rng(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        gt = rng.random((pairs, size, size), dtype=np.float32) * 1000
        for side in ("train", "test"):
            (root / "src" / side).mkdir(parents=True)
            tifffile.imwrite(root / "src" / side / "x-highsnr.tif", gt)
            tifffile.imwrite(root / "src" / side / "x-lowsnr.tif", rng.poisson(gt).astype("f4"))
        layout = {
            "train": {"low": "train/x-lowsnr.tif", "gt": "train/x-highsnr.tif"},
            "test": {"low": "test/x-lowsnr.tif", "gt": "test/x-highsnr.tif"},
        }
        mpx = 2 * 2 * pairs * size * size / 1e6  # both sides, low + gt
        start = time.perf_counter()
        ingest_dataset(root / "src", layout, root / "data", val_fraction=0.25, seed=0)
        rows.append({"name": "ingest", "value": (time.perf_counter() - start) / mpx, "mpx": mpx})
        patches = PatchSettings(128, 64, 0.4, 1.0, 0)
        norm = NormalizationSettings(0.1, 99.9)
        start = time.perf_counter()
        build_patches(root / "data", root / "patches", patches, norm)
        train_mpx = mpx / 2
        seconds = (time.perf_counter() - start) / train_mpx
        rows.append({"name": "patches", "value": seconds, "mpx": train_mpx})
        test_mpx = 2 * pairs * size * size / 1e6
        start = time.perf_counter()
        evaluate_dataset(root / "data", root / "data" / "test" / "low", 0.1, 99.9)
        seconds = (time.perf_counter() - start) / test_mpx
        rows.append({"name": "metrics", "value": seconds, "mpx": test_mpx})
    return [{**r, "unit": "s/Mpx"} for r in rows]


def _child(argv: Sequence[str]) -> None:
    """Entry point of one measurement process: prints one JSON list of rows (measured as the
    jobs run: with their process set-up, :mod:`fmdenoise.process`)."""
    prefer_huge_pages()
    p = argparse.ArgumentParser()
    p.add_argument("kind", choices=["train", "infer", "bm3d", "rules", "flops"])
    p.add_argument("--arch", default="drunet")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--patch", type=int, default=128)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    p.add_argument("--nchw", action="store_true", help="contiguous NCHW instead of channels_last")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--tile", type=int, default=0)
    p.add_argument("--pairs", type=int, default=2)
    a = p.parse_args(argv)
    device = dev.resolve(a.device)
    base = _device_row(device)
    if a.kind == "train":
        rows = [{"kind": "train", "name": a.arch, "precision": a.precision}]
        rows[0] |= train_step(
            a.arch, a.batch, a.patch, device, a.steps, a.precision, not a.nchw, a.compile
        )
    elif a.kind == "infer":
        rows = [{"kind": "infer", "name": a.arch, "tile": a.tile or None}]
        rows[0] |= inference(a.arch, a.size, a.tile or None, device, repeats=1)
    elif a.kind == "bm3d":
        rows = [{"kind": "infer", "name": "bm3d", **bm3d(a.size)}]
        base |= {"device_type": "cpu", "threads": 1}
    elif a.kind == "rules":
        rows = [{"kind": "rule", **r} for r in data_rules(a.size, a.pairs)]
    else:
        rows = [
            {"kind": "flops", "name": a.arch, "value": gflop_forward(a.arch), "unit": "GFLOP"},
            {"kind": "params", "name": a.arch, "value": parameter_count(a.arch), "unit": "count"},
        ]
    peak = _peak_mb(device) if a.kind in ("train", "infer") else _peak_rss_mb()
    print(json.dumps([{**base, **r, "peak_mem_mb": round(peak, 1)} for r in rows]))


def run_measurement(
    args: Sequence[str],
    timeout: float = 3600,
    *,
    env: Mapping[str, str] | None = None,
    prefix: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """One measurement in a fresh process (clean peak memory); its rows. ``env``: the
    process's environment (default: this one's); ``prefix``: a launcher before the command,
    e.g. ``srun ...`` (benchmarks/slurm_overhead.py)."""
    proc = subprocess.run(
        [*prefix, sys.executable, "-m", "fmdenoise.plan.calibrate", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=None if env is None else dict(env),
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"measurement {' '.join(args)} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def calibrate(
    device: str = "cpu",
    *,
    archs: Sequence[str] = tuple(FULL_SIZE),
    batch: int | None = None,
    patch: int = 128,
    infer_size: int = 512,
    steps: int | None = None,
    progress: Any = print,
    budget_s: float | None = None,
    on_rows: Callable[[list[dict[str, Any]]], None] | None = None,
) -> list[dict[str, Any]]:
    """Every calibration row for this machine's ``device``: FLOPs, a training step per
    architecture (on CPU at batch 2, the most a 24 GB machine fits for full-size Restormer; on
    CUDA at batch 8 in fp32 and bf16), inference s/Mpx per architecture and BM3D, and the data
    rules. Each measurement runs in its own process.

    On CUDA the measurements run in the order the plan needs them (the default training
    variant, bf16 channels_last, and inference first; fp32, NCHW and ``torch.compile`` last), so
    that a ``budget_s`` (a GPU node's time limit) cuts the least useful ones; ``on_rows`` gets
    the rows so far after every measurement (write them: a killed calibration keeps them)."""
    cuda = device == "cuda"
    steps = steps or (10 if cuda else 3)
    jobs: list[list[str]] = [["flops", "--arch", a] for a in archs]

    def train(arch: str, *variant: str) -> list[str]:
        b = batch or (8 if cuda or arch == "care_unet" else 2)
        job = ["train", "--arch", arch, "--batch", str(b), "--patch", str(patch)]
        return [*job, "--steps", str(steps), "--device", device, *variant]

    def infer(arch: str, *variant: str) -> list[str]:
        size = 2048 if cuda else infer_size
        return ["infer", "--arch", arch, "--size", str(size), "--device", device, *variant]

    if cuda:
        jobs += [train(a, "--precision", "bf16") for a in archs]
        jobs += [infer(a) for a in archs]
        jobs += [infer(a, "--tile", "512") for a in archs]  # the study's tiled inference
        jobs += [train(a, "--precision", "fp32") for a in archs]
        jobs += [train(a, "--precision", "bf16", "--nchw") for a in archs]
        jobs += [train(a, "--precision", "bf16", "--compile") for a in archs]
    else:
        jobs += [train(a, "--precision", "fp32") for a in archs]
        jobs += [infer(a) for a in archs]
        jobs += [["bm3d", "--size", str(infer_size)], ["rules", "--size", "1024", "--pairs", "2"]]
    return run_measurements(jobs, progress, budget_s=budget_s, on_rows=on_rows)


def calibrate_table(
    device: str,
    output: str | Path | None = None,
    append: str | Path | None = None,
    budget_s: float | None = None,
    progress: Any = print,
) -> Path:
    """``fmdenoise calibrate``: measure ``device`` (:func:`calibrate`) and write the table to
    ``output`` (default: the shipped one), keeping ``append``'s rows of other device types. The
    table is rewritten after every measurement, so a calibration killed on a time-limited node
    keeps what it measured."""
    from fmdenoise.costs.calibration import (
        Calibration,
        replace_rows,
        shipped_table,
        write_table,
    )

    path = Path(output or shipped_table())
    kept = (
        [r for r in Calibration.load(append).rows if r["device_type"] != device] if append else []
    )

    def save(rows: list[dict[str, Any]]) -> None:
        # the FLOP and parameter counts are device-independent rows: the new ones replace them
        write_table(replace_rows(kept, rows), path)

    save(calibrate(device, progress=progress, budget_s=budget_s, on_rows=save))
    return path


def calibrate_inference(
    archs: Sequence[str], *, size: int = 512, progress: Any = print
) -> list[dict[str, Any]]:
    """This machine's CPU inference rows: each of ``archs`` at full size and BM3D on a
    ``size`` x ``size`` image, as :func:`calibrate` measures them (what a CPU rehearsal prices
    its predict jobs with: a machine slower than the shipped table's would outrun them)."""
    jobs = [["infer", "--arch", a, "--size", str(size), "--device", "cpu"] for a in archs]
    return run_measurements([*jobs, ["bm3d", "--size", str(size)]], progress)


def run_measurements(
    jobs: Sequence[Sequence[str]],
    progress: Any = print,
    *,
    budget_s: float | None = None,
    on_rows: Callable[[list[dict[str, Any]]], None] | None = None,
) -> list[dict[str, Any]]:
    """Run each measurement in its own process, one after the other; their rows, marked
    ``measured``. ``progress`` gets one line per measurement.

    Without ``budget_s`` a failing measurement raises. With it, no measurement starts after
    ``budget_s`` seconds, each is killed at what is left of it, and one that fails or is killed
    is reported through ``progress`` and skipped: the rows measured so far are the result (what
    a GPU node with a time limit should keep). ``on_rows`` gets the rows after each success."""
    rows: list[dict[str, Any]] = []
    start_all = time.perf_counter()
    for job in jobs:
        left = None if budget_s is None else budget_s - (time.perf_counter() - start_all)
        if left is not None and left <= 0:
            progress(f"{' '.join(job)}: not started (budget of {budget_s:.0f} s spent)")
            continue
        start = time.perf_counter()
        try:
            new = run_measurement(job, timeout=3600 if left is None else left)
        except (RuntimeError, subprocess.TimeoutExpired) as err:
            if budget_s is None:
                raise
            reason = "killed at the budget" if isinstance(err, subprocess.TimeoutExpired) else err
            progress(f"{' '.join(job)}: skipped ({str(reason).strip().splitlines()[-1]})")
            continue
        for row in new:
            row["source"] = "measured"
        rows += new
        progress(
            f"{' '.join(job)}: {new[0]['value']:.4g} {new[0]['unit']} "
            f"({time.perf_counter() - start:.0f} s)"
        )
        if on_rows is not None:
            on_rows(rows)
    return rows


if __name__ == "__main__":
    _child(sys.argv[1:])
