"""Successive halving against the full grid, both run by snakemake on the demo study.

The demo's data and models (every dataset and model unless narrowed), a grid of 3 losses x 3
learning rates, 90 steps validated every 10; halving with eta 3 and a first rung of 10 steps
(rungs at 10, 30, 90: 9 cells, then 3, then 1). The scratch and augmentation studies are off:
they do not depend on the search. Both searches start from the same data, patches and
pretrained weights. Prints, per model and dataset, the grid's best cell and the halving pick
(validation PSNR at the full budget), whether they agree, and the ratio of training steps and
of training job hours (each job's wall time from Snakemake's benchmark files); then the
totals against the targets (steps <= 1/3, every pick within 0.1 dB).

    python benchmarks/search.py [--datasets actin-demo] [--models drunet care] [--workdir DIR]
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

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "demo" / "config.yaml"
TRAINING = {"steps": 90, "val_every": 10, "checkpoint_every": 30}
GRID = {
    "losses": ["mae", "ssim", "ssim_l1"],
    "learning_rates": [0.003, 0.001, 0.0003],
    "scratch_study": False,
    "augmentation_study": False,
}
HALVING = {"eta": 3, "min_steps": 10}


def config(path: Path, search: str, datasets: list[str] | None, models: list[str] | None) -> Path:
    cfg = yaml.safe_load(DEMO.read_text())
    if datasets:
        cfg["datasets"] = {d: cfg["datasets"][d] for d in datasets}
    if models:
        cfg["models"] = {m: cfg["models"][m] for m in models}
    cfg["training"].update(TRAINING)
    # every dataset swept; the studies are off, so their datasets need not name one kept here
    cfg["grid"].update(
        GRID, search=search, halving=HALVING, sweep_datasets=None, study_datasets=None
    )
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def snakemake(work: Path, cfg: Path, targets: list[str], cores: int) -> float:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile")]
    cmd += ["--directory", str(work), "--configfile", str(cfg), "--cores", str(cores), *targets]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(proc.stdout[-3000:] + proc.stderr[-3000:])
    return time.perf_counter() - start


def job_hours(results: Path, rules: tuple[str, ...], pairs: list[tuple[str, str]]) -> float:
    """Wall hours of the jobs of ``rules`` for the (model, dataset) ``pairs`` (Snakemake's
    benchmark files ``benchmarks/<rule>/<model>/<dataset>/...``, column ``s``)."""
    files = [
        f
        for r in rules
        for f in (results / "benchmarks" / r).rglob("*.tsv")
        if tuple(f.relative_to(results / "benchmarks" / r).parts[:2]) in pairs
    ]
    return sum(float(pd.read_csv(f, sep="\t")["s"].iloc[-1]) for f in files) / 3600


def compare(full: Path, halving: Path, pairs: list[tuple[str, str]]) -> pd.DataFrame:
    """Per (model, dataset): both picks and their cost; ``full``/``halving`` are workdirs."""
    rows = []
    for model, dataset in pairs:
        grid = json.loads((full / f"results/demo/selected/{model}/{dataset}.json").read_text())
        half = json.loads((halving / f"results/demo/selected/{model}/{dataset}.json").read_text())
        g, h = grid["selected"], half["selected"]
        grid_steps = sum(
            json.loads((full / c["run"] / "run.json").read_text())["steps_done"]
            for c in grid["candidates"]
        )
        rows.append(
            {
                "model": model,
                "dataset": dataset,
                "grid_pick": f"{g['loss']} {g['lr']:g}",
                "grid_psnr": g["val_psnr"],
                "halving_pick": f"{h['loss']} {h['lr']:g}",
                "halving_psnr": h["val_psnr"],
                "same_cell": (g["loss"], g["lr"], g["seed"]) == (h["loss"], h["lr"], h["seed"]),
                "psnr_gap_db": g["val_psnr"] - h["val_psnr"],
                "grid_steps": grid_steps,
                "halving_steps": half["search"]["steps"],
                "step_ratio": half["search"]["steps"] / grid_steps,
            }
        )
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="*", default=None)
    parser.add_argument("--models", nargs="*", default=None)
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="search-"))
    full_dir, half_dir = work / "full", work / "halving"
    full_dir.mkdir(parents=True, exist_ok=True)
    full_cfg = config(work / "full.yaml", "full", args.datasets, args.models)
    half_cfg = config(work / "halving.yaml", "halving", args.datasets, args.models)
    cfg = yaml.safe_load(full_cfg.read_text())
    pairs = [(m, d) for m in cfg["models"] for d in cfg["datasets"]]
    selected = [f"results/demo/selected/{m}/{d}.json" for m, d in pairs]
    prep = [f"results/demo/patches/{d}/patches.json" for d in cfg["datasets"]]
    prep += [f"results/demo/pretrained/{m}.pt" for m in cfg["models"] if m != "care"]
    t_prep = snakemake(full_dir, full_cfg, prep, args.cores)
    if not half_dir.exists():  # the same inputs, copied with their times (up to date)
        for sub in ("synthetic", "downloads", "sources", "data", "patches", "pretrained"):
            shutil.copytree(full_dir / "results/demo" / sub, half_dir / "results/demo" / sub)
    t_full = snakemake(full_dir, full_cfg, selected, args.cores)
    t_half = snakemake(half_dir, half_cfg, [*selected, "results/demo/tables/search.md"], args.cores)
    table = compare(full_dir, half_dir, pairs)
    h_full = job_hours(full_dir / "results" / "demo", ("train",), pairs)
    h_half = job_hours(half_dir / "results" / "demo", ("rung", "train", "promote"), pairs)
    pd.set_option("display.width", 200)
    print(f"workdir {work}; data and pretrained weights {t_prep:.0f} s")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    steps = table["halving_steps"].sum() / table["grid_steps"].sum()
    print(
        f"\ntraining steps: halving {table['halving_steps'].sum()} / grid "
        f"{table['grid_steps'].sum()} = {steps:.3f} (target <= 0.333)"
    )
    print(
        f"training job hours (each job's wall time): halving {h_half:.3f} / grid {h_full:.3f}"
        f" = {h_half / h_full:.3f}; snakemake wall of this invocation: grid {t_full:.0f} s,"
        f" halving {t_half:.0f} s (small when the runs were already there)"
    )
    misses = table[table["psnr_gap_db"] > 0.1]
    print(
        f"same cell as the grid: {int(table['same_cell'].sum())}/{len(table)}; "
        f"largest gap {table['psnr_gap_db'].max():.3f} dB; "
        f"picks more than 0.1 dB below the grid's best: {len(misses)}"
    )
    for _, m in misses.iterrows():
        print(f"  miss: {m['model']}/{m['dataset']}: {m['halving_pick']} vs {m['grid_pick']}")


if __name__ == "__main__":
    main()
