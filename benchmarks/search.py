"""Search methods against the full grid, run by snakemake on the demo study.

The demo's data and models (every dataset and model unless narrowed), a grid of 3 losses x 3
learning rates, 90 steps validated every 10; the scratch and augmentation studies are off
(they do not depend on the search). Every method starts from the same data, patches and
pretrained weights. Methods run for real (``--methods``, each in its own folder):

- ``halving``: successive halving, eta 3, a first rung of 10 steps (rungs at 10, 30, 90: 9
  cells, then 3, then 1): the former default;
- ``stratified``: learning rates raced within each loss at 20 steps (2/9 of the budget:
  ``grid.halving.stratify: loss`` for the first rung), the losses' winners compared at 40
  (4/9), the best to 90 (``grid.halving.budgets: [20, 40]``; 9 cells, then 3, then 1): what
  ``config.yaml`` and the demo use.

Prints, per method, model and dataset, the grid's best cell and the method's pick (validation
PSNR at the full budget), their gap, and the ratio of training steps and of training job
hours (each job's wall time from Snakemake's benchmark files); then the totals against the
targets (steps <= 0.4 of the grid's, the pick within 0.1 dB of the grid's best in at least 7
of 8 pairs). Then, from the full grid's validation curves alone, the same decisions
*simulated* for more rules and budgets (a rung's curve is exactly the prefix of the
uninterrupted run's, so the simulation is what a run would decide), with the same promotion
code (:func:`fmdenoise.train.search.promote`).

    python benchmarks/search.py [--datasets mito-demo nucleus-demo] [--models drunet care]
        [--methods halving stratified] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import yaml

from fmdenoise.halving import rung_budgets
from fmdenoise.train.search import promote

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "demo" / "config.yaml"
TRAINING = {"steps": 90, "val_every": 10, "checkpoint_every": 30}
GRID = {
    "losses": ["mae", "ssim", "ssim_l1"],
    "learning_rates": [0.003, 0.001, 0.0003],
    "scratch_study": False,
    "augmentation_study": False,
}
METHODS = {
    "halving": {"eta": 3, "min_steps": 10, "stratify": None},
    "stratified": {
        "eta": 3,
        "min_steps": 10,
        "budgets": [20, 40],
        "stratify": "loss",
        "stratify_rungs": 1,
    },
}
STEP_TARGET, PICK_TARGET, GAP_DB = 0.4, 7 / 8, 0.1


def config(
    path: Path, halving: dict | None, datasets: list[str] | None, models: list[str] | None
) -> Path:
    """The benchmark's config: the full grid (``halving`` None) or a halving search."""
    cfg = yaml.safe_load(DEMO.read_text())
    if datasets:
        cfg["datasets"] = {d: cfg["datasets"][d] for d in datasets}
    if models:
        cfg["models"] = {m: cfg["models"][m] for m in models}
    cfg["training"].update(TRAINING)
    # every dataset swept; the studies are off, so their datasets need not name one kept here
    cfg["grid"].update(GRID, sweep_datasets=None, study_datasets=None)
    if halving:
        cfg["grid"].update(search="halving", halving=halving)
    else:  # the rungs' parameters are not read by a full grid
        cfg["grid"].update(search="full", halving=METHODS["halving"])
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


def compare(full: Path, method: Path, pairs: list[tuple[str, str]]) -> pd.DataFrame:
    """Per (model, dataset): the grid's pick and the method's, and their cost."""
    rows = []
    for model, dataset in pairs:
        grid = json.loads((full / f"results/demo/selected/{model}/{dataset}.json").read_text())
        half = json.loads((method / f"results/demo/selected/{model}/{dataset}.json").read_text())
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
                "pick": f"{h['loss']} {h['lr']:g}",
                "psnr": h["val_psnr"],
                "same_cell": (g["loss"], g["lr"], g["seed"]) == (h["loss"], h["lr"], h["seed"]),
                "gap_db": g["val_psnr"] - h["val_psnr"],
                "grid_steps": grid_steps,
                "steps": half["search"]["steps"],
            }
        )
    return pd.DataFrame(rows)


def verdict(steps: float, within: int, n: int) -> str:
    ok = steps <= STEP_TARGET and within >= PICK_TARGET * n
    return (
        f"steps {steps:.3f} of the grid's (target <= {STEP_TARGET}); picks within {GAP_DB} dB "
        f"{within}/{n} (target >= {PICK_TARGET * n:.0f}/{n}): {'MET' if ok else 'MISSED'}"
    )


# ------------------------------------------------------------------ simulation from the grid


def grid_curves(full: Path, pairs: list[tuple[str, str]]) -> dict[tuple[str, str], dict]:
    """Per (model, dataset): cell (loss, lr, seed) -> its full-budget validation curve."""
    out = {}
    for model, dataset in pairs:
        grid = json.loads((full / f"results/demo/selected/{model}/{dataset}.json").read_text())
        out[(model, dataset)] = {
            (c["loss"], c["lr"], c["seed"]): pd.read_csv(full / c["run"] / "curve.csv")
            for c in grid["candidates"]
        }
    return out


def best_at(curve: pd.DataFrame, budget: int) -> float:
    """The best validation PSNR after training began, up to ``budget`` (what the loop tracks:
    the validation before the first step is recorded, not a candidate)."""
    values = curve.loc[(curve["step"] > 0) & (curve["step"] <= budget), "val_psnr"]
    return float(values.max()) if len(values) else -math.inf


def forecast_at(curve: pd.DataFrame, budget: int, final: int) -> float:
    """The best so far, or the last two validations' trend in log(step) carried to ``final``
    (a curve still rising steeply is credited with where it is heading)."""
    c = curve[(curve["step"] <= budget) & (curve["step"] > 0)]
    best = best_at(curve, budget)
    if len(c) < 2:
        return best
    (s1, v1), (s2, v2) = c[["step", "val_psnr"]].iloc[-2], c[["step", "val_psnr"]].iloc[-1]
    slope = (v2 - v1) / math.log(s2 / s1)
    return max(best, v2 + max(slope, 0.0) * math.log(final / s2))


Score = Callable[[pd.DataFrame, int, int], float]


def simulate(
    curves: dict, budgets: list[int], eta: int, strata: list[str | None], score: Score
) -> tuple[tuple, int]:
    """The cell a search picks and the steps it trains, decided on ``curves`` exactly as the
    promote rule would (:func:`promote` on rung summaries built from the curves; ``strata``:
    each promotion's stratum)."""
    order = list(curves)
    alive, reached = list(order), dict.fromkeys(order, 0)
    final = budgets[-1]
    for budget, stratify in zip(budgets[:-1], strata, strict=True):
        for cell in alive:
            reached[cell] = budget
        summaries = [
            {
                "run": str(cell),
                "cell": {"loss": cell[0], "lr": cell[1], "seed": cell[2]},
                "best": {"val_psnr": score(curves[cell], budget, final)},
            }
            for cell in alive
        ]
        decided = promote(summaries, eta, order, stratify)
        kept = {s["run"] for s in decided if s["promoted"]}
        alive = [c for c in alive if str(c) in kept]
    for cell in alive:
        reached[cell] = final
    pick = max(alive, key=lambda c: best_at(curves[c], final))
    steps = sum(min(reached[c], int(curves[c]["step"].max())) for c in order)
    return pick, steps


def simulated(curves_by_pair: dict, final: int) -> pd.DataFrame:
    """Every simulated rule on every pair: steps ratio, picks within the gap."""

    def best(c: pd.DataFrame, b: int, _final: int) -> float:
        return best_at(c, b)

    third, ninth = round(final / 3), round(final / 9)
    plain, loss = [None, None], ["loss", "loss"]
    late = [2 * ninth, 4 * ninth, final]
    rules = {  # name: (rung budgets, eta, each promotion's stratum, score)
        "halving, rungs 1/9, 1/3": (rung_budgets(final, ninth, 3), 3, plain, best),
        "halving, rungs 2/9, 4/9 (late)": (late, 3, plain, best),
        "halving, rungs 2/9, 2/3": ([2 * ninth, 2 * third, final], 3, plain, best),
        "halving, rungs 1/3 (two rungs)": ([third, final], 3, [None], best),
        "halving on a forecast, 1/9, 1/3": (rung_budgets(final, ninth, 3), 3, plain, forecast_at),
        "halving on a forecast, 2/9, 4/9": (late, 3, plain, forecast_at),
        "stratified every rung, 1/9, 1/3": (rung_budgets(final, ninth, 3), 3, loss, best),
        "stratified, then losses at 4/9": ([ninth, 4 * ninth, final], 3, ["loss", None], best),
        "stratified first, 2/9, 4/9": (late, 3, ["loss", None], best),
    }
    rows = []
    for name, (budgets, eta, stratify, score) in rules.items():
        for (model, dataset), curves in curves_by_pair.items():
            pick, steps = simulate(curves, budgets, eta, stratify, score)
            grid_best = max(curves, key=lambda c: best_at(curves[c], final))
            grid_steps = sum(int(c["step"].max()) for c in curves.values())
            gap = best_at(curves[grid_best], final) - best_at(curves[pick], final)
            rows.append(
                {"rule": name, "model": model, "dataset": dataset, "gap_db": gap,
                 "steps": steps, "grid_steps": grid_steps}
            )  # fmt: skip
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="*", default=["mito-demo", "nucleus-demo"])
    parser.add_argument("--models", nargs="*", default=None)
    parser.add_argument("--methods", nargs="*", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="search-"))
    full_dir = work / "full"
    full_dir.mkdir(parents=True, exist_ok=True)
    full_cfg = config(work / "full.yaml", None, args.datasets, args.models)
    cfg = yaml.safe_load(full_cfg.read_text())
    pairs = [(m, d) for m in cfg["models"] for d in cfg["datasets"]]
    selected = [f"results/demo/selected/{m}/{d}.json" for m, d in pairs]
    prep = [f"results/demo/patches/{d}/patches.json" for d in cfg["datasets"]]
    prep += [f"results/demo/pretrained/{m}.pt" for m in cfg["models"] if m != "care"]
    t_prep = snakemake(full_dir, full_cfg, prep, args.cores)
    t_full = snakemake(full_dir, full_cfg, selected, args.cores)
    h_full = job_hours(full_dir / "results" / "demo", ("train",), pairs)
    pd.set_option("display.width", 200)
    print(f"workdir {work}; data and pretrained weights {t_prep:.0f} s; grid {t_full:.0f} s")
    fmt = {"float_format": lambda v: f"{v:.3f}", "index": False}
    for method in args.methods:
        method_dir = work / method
        if not method_dir.exists():  # the same inputs, copied with their times (up to date)
            for sub in ("synthetic", "downloads", "sources", "data", "patches", "pretrained"):
                shutil.copytree(full_dir / "results/demo" / sub, method_dir / "results/demo" / sub)
        method_cfg = config(work / f"{method}.yaml", METHODS[method], args.datasets, args.models)
        t = snakemake(method_dir, method_cfg, [*selected, "results/demo/tables/search.md"], 2)
        table = compare(full_dir, method_dir, pairs)
        hours = job_hours(method_dir / "results/demo", ("rung", "train", "promote"), pairs)
        steps = table["steps"].sum() / table["grid_steps"].sum()
        within = int((table["gap_db"] <= GAP_DB).sum())
        print(f"\n== {method} ({METHODS[method]}), snakemake {t:.0f} s")
        print(table.to_string(**fmt))
        print(verdict(steps, within, len(table)))
        print(f"training job hours: {hours:.3f} / grid {h_full:.3f} = {hours / h_full:.3f}")
        for _, m in table[table["gap_db"] > GAP_DB].iterrows():
            print(f"  miss: {m['model']}/{m['dataset']}: {m['pick']} vs {m['grid_pick']}")
    sims = simulated(grid_curves(full_dir, pairs), TRAINING["steps"])
    print("\n== simulated from the grid's curves (the same promotion code)")
    for rule, rows in sims.groupby("rule", sort=False):
        steps = rows["steps"].sum() / rows["grid_steps"].sum()
        within = int((rows["gap_db"] <= GAP_DB).sum())
        print(f"{rule:<36} {verdict(steps, within, len(rows))}; worst {rows['gap_db'].max():.3f}")


if __name__ == "__main__":
    main()
