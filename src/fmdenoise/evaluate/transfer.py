"""Transfer across datasets (``evaluation.transfer``): how a model selected on one dataset
serves on another's test set.

One row per (model, trained on, tested on), the in-domain pairs (a model on the dataset it was
selected on) included: mean test PSNR (study convention), its gain over the raw input and over
the zero-shot model on the tested dataset (None for models trained from scratch), and its
difference to the model selected on the tested dataset itself. Inference only: nothing is
trained for it. The workflow predicts on the GPU (rule ``transfer_predict``, predictions kept
until scored) and scores on CPUs (rule ``transfer``), as the main evaluation's predict and
metrics jobs do, so that no GPU is held for metric work.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from fmdenoise.evaluate.metrics import evaluate_dataset
from fmdenoise.evaluate.predict import predict_dataset
from fmdenoise.io import atomic_dir, write_text
from fmdenoise.settings import NormalizationSettings

log = logging.getLogger(__name__)


def predict_transfer(
    method: Mapping[str, Any],
    targets: Mapping[str, str | Path],
    out_dir: str | Path,
    norm: NormalizationSettings,
    *,
    tile: int | None = None,
    overlap: int = 64,
    device: str = "auto",
) -> None:
    """Apply one model (``method``: a neural kind with its checkpoint) to the test set of every
    dataset in ``targets`` (name -> ingested folder): ``out_dir/<name>/<image>.tif`` (the
    folder written whole or not at all). The GPU part of a transfer; :func:`score_transfer`
    scores it on CPUs in a job of its own."""
    with atomic_dir(out_dir) as tmp:
        for name, data_dir in targets.items():
            predict_dataset(
                method, data_dir, tmp / name, norm, tile=tile, overlap=overlap, device=device
            )


def score_transfer(
    targets: Mapping[str, str | Path],
    pred_dir: str | Path,
    out_csv: str | Path,
    norm: NormalizationSettings,
) -> pd.DataFrame:
    """The per-image metrics of :func:`predict_transfer`'s predictions on every target's test
    set (column ``tested_on``; MicroSSIM fitted per test set), written as one CSV."""
    tables = []
    for name, data_dir in targets.items():
        pred = Path(pred_dir) / name
        table = evaluate_dataset(data_dir, pred, norm.low_percentile, norm.high_percentile)
        tables.append(table.assign(tested_on=name))
        log.info("%s: %d test images, mean PSNR %.2f", name, len(table), table["psnr"].mean())
    out = pd.concat(tables, ignore_index=True)
    write_text(out_csv, out.to_csv(index=False))
    return out


def evaluate_transfer(
    method: Mapping[str, Any],
    targets: Mapping[str, str | Path],
    out_csv: str | Path,
    norm: NormalizationSettings,
    *,
    tile: int | None = None,
    overlap: int = 64,
    device: str = "auto",
) -> pd.DataFrame:
    """:func:`predict_transfer` then :func:`score_transfer` in one call, the predictions in a
    temporary folder (the workflow runs them as two jobs: GPU, then CPUs)."""
    with tempfile.TemporaryDirectory(prefix="fmdenoise-transfer-") as tmp:
        pred = Path(tmp) / "predictions"
        predict_transfer(method, targets, pred, norm, tile=tile, overlap=overlap, device=device)
        return score_transfer(targets, pred, out_csv, norm)


def transfer_table(
    transfer_files: Mapping[tuple[str, str], str | Path],
    metric_files: Mapping[tuple[str, str], str | Path],
    finetuned: Sequence[str],
) -> pd.DataFrame:
    """``transfer_files[(model, trained on)]`` -> :func:`score_transfer`'s csv;
    ``metric_files[(method, dataset)]`` -> per-image csv of ``raw``, the zero-shot and the
    selected models on each dataset (the in-domain rows come from these)."""
    psnrs = {key: pd.read_csv(path)["psnr"] for key, path in metric_files.items()}
    mean = {key: float(v.mean()) for key, v in psnrs.items()}
    size = {key: len(v) for key, v in psnrs.items()}
    results = []  # (model, trained on, tested on, n, mean psnr)
    for (model, source), path in sorted(transfer_files.items()):
        if (model, source) in mean:
            results.append((model, source, source, size[(model, source)], mean[(model, source)]))
        for tested, g in pd.read_csv(path).groupby("tested_on", sort=True):
            results.append((model, source, str(tested), len(g), float(g["psnr"].mean())))
    rows = []
    for model, source, tested, n, psnr in results:
        in_domain = mean.get((model, tested))
        zero_shot = mean.get((f"{model}-zeroshot", tested)) if model in finetuned else None
        rows.append(
            {
                "model": model,
                "trained_on": source,
                "tested_on": tested,
                "n": n,
                "psnr": psnr,
                "gain_over_raw": psnr - mean[("raw", tested)],
                "gain_over_zeroshot": None if zero_shot is None else psnr - zero_shot,
                "vs_in_domain": None if in_domain is None else psnr - in_domain,
            }
        )
    columns = ["model", "trained_on", "tested_on", "n", "psnr", "gain_over_raw"]
    columns += ["gain_over_zeroshot", "vs_in_domain"]
    return pd.DataFrame(rows, columns=columns)


def _cell(row: pd.Series) -> str:
    text = f"{row['gain_over_raw']:+.2f}"
    if row["gain_over_zeroshot"] is not None and not pd.isna(row["gain_over_zeroshot"]):
        text += f" ({row['gain_over_zeroshot']:+.2f})"
    return text


def write_transfer_table(table: pd.DataFrame, stem: str | Path) -> None:
    """``stem.csv`` (every number); ``stem.md`` and ``stem.tex``: per model, a matrix of
    trained on (rows) x tested on (columns), each cell the gain over raw in dB and, in
    brackets, the gain over the zero-shot model."""
    stem = Path(stem)
    write_text(stem.with_suffix(".csv"), table.to_csv(index=False))
    md = [
        "Transfer across datasets: PSNR gain over the raw input in dB (in brackets: over the "
        "zero-shot model) of each model selected on a dataset (rows) on each test set "
        "(columns); the diagonal is in-domain.",
        "",
    ]
    tex = []
    for model, g in table.groupby("model", sort=True):
        matrix = g.assign(cell=g.apply(_cell, axis=1)).pivot(
            index="trained_on", columns="tested_on", values="cell"
        )
        matrix = matrix.fillna("").rename_axis(index=f"{model}: trained on", columns=None)
        md += [f"**{model}**", "", matrix.to_markdown(disable_numparse=True), ""]
        tex.append(
            matrix.to_latex(
                caption=f"Transfer across datasets: {model} (gain over raw, dB)",
                label=f"tab:transfer-{model}",
            )
        )
    write_text(stem.with_suffix(".md"), "\n".join(md))
    write_text(stem.with_suffix(".tex"), "\n".join(tex))


def transfer_summary(table: pd.DataFrame) -> dict[str, Any]:
    """What Q1 says of transfer: over the pairs of distinct datasets, how often a model
    gained over raw and over its zero-shot weights, and the median loss against the model
    selected on the tested dataset."""
    moved = table[table["trained_on"] != table["tested_on"]]
    zs = moved["gain_over_zeroshot"].dropna()
    return {
        "pairs": len(moved),
        "over_raw": int((moved["gain_over_raw"] > 0).sum()),
        "median_gain_over_raw": float(moved["gain_over_raw"].median()) if len(moved) else None,
        "zero_shot_pairs": len(zs),
        "over_zero_shot": int((zs > 0).sum()),
        "median_vs_in_domain": float(moved["vs_in_domain"].median()) if len(moved) else None,
    }
