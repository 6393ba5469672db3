"""Comparison tables, written as csv, Markdown and LaTeX.

``main``: one row per (dataset, method): mean PSNR, SSIM and MicroSSIM over the test images
with 95 % bootstrap confidence intervals, for trained models with extra seeds
(``grid.final_seeds``) the mean and standard deviation of the test means over the seeds of
the selected cell (training noise, beside the per-image intervals), the metric convention,
the training GPU-hours of trained methods, and for each fine-tuned model the paired Wilcoxon
p-value (two-sided, per-image PSNR, n test images) against the best baseline of that dataset
(the baseline with the highest mean PSNR), that p adjusted by Holm over the comparisons made on
the dataset, and the verdict: better / worse / not significant at alpha 0.05.

``hyperparameters``, ``scratch``, ``augmentation``: validation-only views of the training grid.

``cost``: per (dataset, method) the parameter count, the training time of the selected run and
of the whole (loss x lr) sweep behind it (wall hours and GPU-hours: GPU-hours are 0 on a CPU),
and the inference time per megapixel on the device that made the predictions.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from fmdenoise.evaluate.stats import bootstrap_ci, holm, verdict, wilcoxon_paired
from fmdenoise.io import write_text

SEED_METRICS = ("psnr", "ssim", "microssim")


def seed_files_by_cell(paths: Sequence[str | Path]) -> dict[tuple[str, str], list[Path]]:
    """``metrics/<model>-seed<k>/<dataset>.csv`` files grouped by (model, dataset)."""
    out: dict[tuple[str, str], list[Path]] = {}
    for path in map(Path, paths):
        model, _, seed = path.parent.name.rpartition("-seed")
        if not model or not seed.isdigit():
            raise ValueError(f"{path}: not the metrics of an extra seed (<model>-seed<k>)")
        out.setdefault((model, path.stem), []).append(path)
    return out


def seed_spread(
    selected: pd.DataFrame, extra: Sequence[pd.DataFrame]
) -> dict[str, float | int | None]:
    """Test-set means of the selected run and of its extra seeds: their number, mean and
    standard deviation (ddof 1; None with one seed) per metric."""
    runs = [selected, *extra]
    out: dict[str, float | int | None] = {"seeds": len(runs)}
    for metric in SEED_METRICS:
        means = [float(r[metric].mean()) for r in runs if metric in r]
        ok = len(means) == len(runs)
        out[f"{metric}_seed_mean"] = float(np.mean(means)) if ok else None
        out[f"{metric}_seed_sd"] = float(np.std(means, ddof=1)) if ok and len(runs) > 1 else None
    return out


def main_table(
    metric_files: Mapping[tuple[str, str], str | Path],
    finetuned: Sequence[str],
    run_files: Mapping[tuple[str, str], str | Path] | None = None,
    seed: int = 0,
    seed_files: Mapping[tuple[str, str], Sequence[str | Path]] | None = None,
) -> pd.DataFrame:
    """``metric_files[(method, dataset)]`` -> per-image csv; ``finetuned`` names the methods
    compared against the best baseline; ``run_files[(method, dataset)]`` -> selected run.json;
    ``seed_files[(model, dataset)]`` -> per-image csvs of the selected cell's extra seeds (the
    seed columns: mean and sd over the selection run and those)."""
    per = {key: pd.read_csv(path).sort_values("image") for key, path in metric_files.items()}
    seeds = {k: [pd.read_csv(p) for p in v] for k, v in (seed_files or {}).items()}
    rows = []
    for (method, dataset), df in sorted(per.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        psnr, psnr_lo, psnr_hi = bootstrap_ci(df["psnr"], seed=seed)
        ssim, ssim_lo, ssim_hi = bootstrap_ci(df["ssim"], seed=seed)
        micro = bootstrap_ci(df["microssim"], seed=seed) if "microssim" in df else (None,) * 3
        gpu_hours = None
        if run_files and (method, dataset) in run_files:
            run = json.loads(Path(run_files[(method, dataset)]).read_text())
            gpu_hours = run["gpu_hours"]
        rows.append(
            {
                "dataset": dataset,
                "method": method,
                "n": len(df),
                "psnr": psnr,
                "psnr_ci_low": psnr_lo,
                "psnr_ci_high": psnr_hi,
                "ssim": ssim,
                "ssim_ci_low": ssim_lo,
                "ssim_ci_high": ssim_hi,
                "microssim": micro[0],
                "microssim_ci_low": micro[1],
                "microssim_ci_high": micro[2],
                "gpu_hours": gpu_hours,
                **(seed_spread(df, seeds[(method, dataset)]) if (method, dataset) in seeds else {}),
                "convention": df["convention"].iloc[0],
            }
        )
    table = pd.DataFrame(rows)
    for column in ("best_baseline", "p_vs_best_baseline", "p_holm", "verdict", "comparisons"):
        table[column] = None
    for dataset, group in table.groupby("dataset"):
        baselines = group[~group["method"].isin(finetuned)]
        if baselines.empty:
            continue
        best = baselines.sort_values("psnr", ascending=False)["method"].iloc[0]
        compared = group[group["method"].isin(finetuned)]
        pvalues = [
            wilcoxon_paired(per[(m, dataset)]["psnr"], per[(best, dataset)]["psnr"])[1]
            for m in compared["method"]
        ]
        adjusted = holm(pvalues)
        best_psnr = float(group.loc[group["method"] == best, "psnr"].iloc[0])
        for (idx, row), p, p_adj in zip(compared.iterrows(), pvalues, adjusted, strict=True):
            table.loc[idx, ["best_baseline", "p_vs_best_baseline", "p_holm"]] = [best, p, p_adj]
            table.loc[idx, ["verdict", "comparisons"]] = [
                verdict(row["psnr"] - best_psnr, p_adj),
                len(pvalues),
            ]
    return table


def _display(table: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame({"dataset": table["dataset"], "method": table["method"]})
    out["PSNR [95% CI]"] = [
        f"{r.psnr:.2f} [{r.psnr_ci_low:.2f}, {r.psnr_ci_high:.2f}]" for r in table.itertuples()
    ]
    out["SSIM [95% CI]"] = [
        f"{r.ssim:.3f} [{r.ssim_ci_low:.3f}, {r.ssim_ci_high:.3f}]" for r in table.itertuples()
    ]
    out["MicroSSIM [95% CI]"] = [
        ""
        if r.microssim is None or pd.isna(r.microssim)
        else f"{r.microssim:.3f} [{r.microssim_ci_low:.3f}, {r.microssim_ci_high:.3f}]"
        for r in table.itertuples()
    ]
    if "psnr_seed_sd" in table:
        out["PSNR over seeds (mean ± sd, n)"] = [
            ""
            if pd.isna(r.psnr_seed_mean)
            else f"{r.psnr_seed_mean:.2f} ± {r.psnr_seed_sd:.2f} ({r.seeds:.0f})"
            if not pd.isna(r.psnr_seed_sd)
            else f"{r.psnr_seed_mean:.2f} (1)"
            for r in table.itertuples()
        ]
    out["GPU-h"] = [("" if pd.isna(g) else f"{g:.3f}") for g in table["gpu_hours"]]
    out["p (vs best baseline)"] = [
        ("" if p is None or pd.isna(p) else f"{p:.3g}") for p in table["p_vs_best_baseline"]
    ]
    out["p Holm"] = [("" if p is None or pd.isna(p) else f"{p:.3g}") for p in table["p_holm"]]
    out["vs best baseline (PSNR)"] = ["" if pd.isna(v) else v for v in table["verdict"]]
    return out


def write_table(table: pd.DataFrame, stem: str | Path, caption: str) -> None:
    """Write ``stem.csv`` (all numbers), ``stem.md`` and ``stem.tex`` (formatted)."""
    stem = Path(stem)
    write_text(stem.with_suffix(".csv"), table.to_csv(index=False))
    shown = _display(table)
    convention = table["convention"].iloc[0] if "convention" in table and len(table) else ""
    write_text(
        stem.with_suffix(".md"),
        f"{caption}\n\nMetric convention: {convention}\n\n" + shown.to_markdown(index=False) + "\n",
    )
    write_text(
        stem.with_suffix(".tex"),
        shown.to_latex(index=False, caption=caption, label=f"tab:{stem.name}"),
    )


def hyperparameter_table(selected_files: Sequence[str | Path]) -> pd.DataFrame:
    """Validation PSNR of every (loss, lr) of the main sweep, per model and dataset, with the
    selected cell marked (from ``selected/<model>/<dataset>.json``); ``selected_on``: the
    dataset whose sweep chose the (loss, lr) (a dataset outside ``grid.sweep_datasets`` trains
    only the cell selected on the first swept one)."""
    rows = []
    for f in selected_files:
        sel = json.loads(Path(f).read_text())
        chosen = sel["selected"]["run"]
        source = (sel.get("transfer_from") or {}).get("dataset")
        for c in sel["candidates"]:
            rows.append(
                {
                    "model": c["model"],
                    "dataset": c["dataset"],
                    "loss": c["loss"],
                    "lr": c["lr"],
                    "seed": c["seed"],
                    "val_psnr": c["val_psnr"],
                    "val_ssim": c["val_ssim"],
                    "selected": c["run"] == chosen,
                    "selected_on": source or c["dataset"],
                }
            )
    return pd.DataFrame(rows).sort_values(["model", "dataset", "loss", "lr"], ignore_index=True)


def study_table(study_files: Sequence[str | Path], study: str) -> pd.DataFrame:
    """Validation curves of a study at matched steps, one row per (model, dataset, step).

    ``study='scratch'`` compares ``pretrained/none`` with ``scratch/none``; ``'augmentation'``
    compares ``pretrained/none`` with ``pretrained/rot`` (runs from ``studies/*.json``).
    """
    other = {"scratch": ("scratch", "none"), "augmentation": ("pretrained", "rot")}[study]
    label = {"scratch": "scratch", "augmentation": "rot"}[study]
    frames = []
    for f in study_files:
        runs = json.loads(Path(f).read_text())["runs"]
        base = [r for r in runs if (r["init"], r["aug"]) == ("pretrained", "none")]
        alt = [r for r in runs if (r["init"], r["aug"]) == other]
        for b, a in zip(base, alt, strict=False):
            cb = pd.read_csv(Path(b["run"]) / "curve.csv")[["step", "val_psnr", "val_ssim"]]
            ca = pd.read_csv(Path(a["run"]) / "curve.csv")[["step", "val_psnr", "val_ssim"]]
            merged = cb.merge(ca, on="step", suffixes=("_pretrained", f"_{label}"))
            merged.insert(0, "seed", b["seed"])
            merged.insert(0, "lr", b["lr"])
            merged.insert(0, "loss", b["loss"])
            merged.insert(0, "dataset", b["dataset"])
            merged.insert(0, "model", b["model"])
            frames.append(merged)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def write_plain_table(table: pd.DataFrame, stem: str | Path, caption: str) -> None:
    """csv, md and tex of a table shown as it is (numbers rounded for md/tex)."""
    stem = Path(stem)
    write_text(stem.with_suffix(".csv"), table.to_csv(index=False))
    shown = table.round(4)
    write_text(stem.with_suffix(".md"), f"{caption}\n\n" + shown.to_markdown(index=False) + "\n")
    write_text(
        stem.with_suffix(".tex"),
        shown.to_latex(index=False, caption=caption, label=f"tab:{stem.name}"),
    )


def cost_table(
    timing_files: Mapping[tuple[str, str], str | Path],
    selected_files: Mapping[tuple[str, str], str | Path] | None = None,
) -> pd.DataFrame:
    """``timing_files[(method, dataset)]`` -> ``predictions/<method>/<dataset>/timing.json``;
    ``selected_files[(model, dataset)]`` -> ``selected/<model>/<dataset>.json`` (trained methods).

    The candidates' ``run.json`` files (paths as written in the selection file) give the
    training times of the selected cell and of the whole sweep.
    """
    selected_files = selected_files or {}
    rows = []
    for (method, dataset), path in sorted(timing_files.items(), key=lambda kv: kv[0][::-1]):
        timing = json.loads(Path(path).read_text())
        row: dict[str, object] = {
            "dataset": dataset,
            "method": method,
            "parameters": timing.get("parameters"),
            "train_wall_hours": None,
            "train_gpu_hours": None,
            "sweep_cells": None,
            "sweep_wall_hours": None,
            "sweep_gpu_hours": None,
            "train_device": None,
            "inference_s_per_mpx": timing["seconds_per_megapixel"],
            "inference_device": timing["device_type"],
        }
        if (method, dataset) in selected_files:
            sel = json.loads(Path(selected_files[(method, dataset)]).read_text())
            runs = {
                c["run"]: json.loads((Path(c["run"]) / "run.json").read_text())
                for c in sel["candidates"]
            }
            chosen = runs[sel["selected"]["run"]]
            # a halving search: every cell at the last rung it reached, not only the finalists
            spend = sel.get("search") or {
                "cells": len(runs),
                "wall_seconds": sum(r["wall_seconds"] for r in runs.values()),
                "gpu_hours": sum(r["gpu_hours"] for r in runs.values()),
            }
            row.update(
                parameters=chosen["parameters"],
                train_wall_hours=chosen["wall_seconds"] / 3600,
                train_gpu_hours=chosen["gpu_hours"],
                sweep_cells=spend["cells"],
                sweep_wall_hours=spend["wall_seconds"] / 3600,
                sweep_gpu_hours=spend["gpu_hours"],
                train_device=chosen["device_type"],
            )
        rows.append(row)
    return pd.DataFrame(rows)


def write_cost_table(table: pd.DataFrame, stem: str | Path, caption: str) -> None:
    """csv (all numbers), md and tex with hours to 3 significant digits and seconds per Mpx to 2."""
    stem = Path(stem)
    write_text(stem.with_suffix(".csv"), table.to_csv(index=False))

    def fmt(value: object, spec: str) -> str:
        return "" if value is None or pd.isna(value) else format(value, spec)

    shown = pd.DataFrame(
        {
            "dataset": table["dataset"],
            "method": table["method"],
            "parameters": [fmt(v, ",.0f") for v in table["parameters"]],
            "train h (selected)": [fmt(v, ".3g") for v in table["train_wall_hours"]],
            "GPU-h (selected)": [fmt(v, ".3g") for v in table["train_gpu_hours"]],
            "train h (sweep)": [fmt(v, ".3g") for v in table["sweep_wall_hours"]],
            "GPU-h (sweep)": [fmt(v, ".3g") for v in table["sweep_gpu_hours"]],
            "inference s/Mpx": [fmt(v, ".2f") for v in table["inference_s_per_mpx"]],
            "device (train/infer)": [
                f"{'-' if t is None or pd.isna(t) else t}/{i}"
                for t, i in zip(table["train_device"], table["inference_device"], strict=True)
            ],
        }
    )
    write_text(
        stem.with_suffix(".md"),
        f"{caption}\n\n" + shown.to_markdown(index=False, disable_numparse=True) + "\n",
    )
    write_text(
        stem.with_suffix(".tex"),
        shown.to_latex(index=False, caption=caption, label=f"tab:{stem.name}"),
    )
