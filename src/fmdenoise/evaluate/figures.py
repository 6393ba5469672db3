"""The study's figures (matplotlib, PNG, written atomically).

- :func:`learning_curves`: validation PSNR against training step, pretrained (solid) versus
  scratch (dashed) initialisation at the selected (loss, lr), one panel per model.
- :func:`psnr_vs_cost`: test PSNR of each trained method against its training time (the
  selected run), one panel per dataset, the best baseline as a horizontal line.
- :func:`transfer_heatmap`: per model, the PSNR gain over raw of the model selected on each
  dataset (rows) on each test set (columns), the diagonal in-domain.
- :func:`example_crops`: one test image per dataset, a crop of noisy input, ground truth and
  every method side by side. Every panel is put on the metric's scale (ground truth
  percentile-normalised, other images affine-fitted to it, see
  :mod:`fmdenoise.evaluate.metrics`) and
  shown with one shared grey range (0 to 1 of that scale), so brightness differences between
  panels are real differences, not display choices.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure

from fmdenoise.data.ingest import split_images
from fmdenoise.data.normalize import normalize_percentile
from fmdenoise.evaluate.metrics import affine_fit
from fmdenoise.io import atomic_path, read_image

DPI = 120


def _color(i: int) -> tuple[float, float, float, float]:
    return colormaps["tab10"](i % 10)


def _figure(rows: int, cols: int, width: float, height: float) -> tuple[Figure, np.ndarray]:
    """A figure without pyplot (no global state, no GUI backend needed)."""
    fig = Figure(figsize=(width * cols, height * rows))
    return fig, fig.subplots(rows, cols, squeeze=False)


def _save(fig: Figure, out: str | Path) -> None:
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight")


def _grid(n: int, ncols: int = 5) -> tuple[int, int]:
    cols = max(1, min(n, ncols))
    return math.ceil(n / cols), cols


def learning_curves(study_files: Sequence[str | Path], out: str | Path) -> None:
    """Validation PSNR per step, pretrained vs scratch, from ``studies/<model>/<dataset>.json``
    (the ``curve.csv`` of each run they list)."""
    by_model: dict[str, list[dict]] = {}
    for f in study_files:
        for run in json.loads(Path(f).read_text())["runs"]:
            if run["aug"] == "none":
                by_model.setdefault(run["model"], []).append(run)
    if not by_model:
        raise ValueError("learning_curves: the study files list no runs")
    rows, cols = _grid(len(by_model), 3)
    fig, axes = _figure(rows, cols, 4.5, 3.4)
    datasets = sorted({r["dataset"] for runs in by_model.values() for r in runs})
    colors = {d: _color(i) for i, d in enumerate(datasets)}
    for ax, (model, runs) in zip(axes.flat, sorted(by_model.items()), strict=False):
        for run in sorted(runs, key=lambda r: (r["dataset"], r["init"], r["seed"])):
            curve = pd.read_csv(Path(run["run"]) / "curve.csv")
            ax.plot(
                curve["step"],
                curve["val_psnr"],
                color=colors[run["dataset"]],
                linestyle="-" if run["init"] == "pretrained" else "--",
                label=f"{run['dataset']} ({run['init']})" if run["seed"] == 0 else None,
            )
        ax.set(title=model, xlabel="training step", ylabel="validation PSNR [dB]")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(by_model) :]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 4), fontsize="small")
    fig.suptitle("Pretrained (solid) vs scratch (dashed), selected loss and learning rate")
    fig.tight_layout(rect=(0, 0.08 + 0.02 * math.ceil(len(labels) / 4), 1, 0.95))
    _save(fig, out)


def psnr_vs_cost(main_csv: str | Path, cost_csv: str | Path, out: str | Path) -> None:
    """Test PSNR against training wall hours of the selected run, per dataset."""
    main = pd.read_csv(main_csv)
    cost = pd.read_csv(cost_csv)
    merged = main.merge(cost, on=["dataset", "method"])
    trained = merged[merged["train_wall_hours"].notna()]
    if trained.empty:
        raise ValueError(f"psnr_vs_cost: no trained method in {cost_csv}")
    baselines = merged[merged["train_wall_hours"].isna()]
    datasets = sorted(trained["dataset"].unique())
    methods = sorted(trained["method"].unique())
    markers = dict(zip(methods, "osD^vP*X", strict=False))
    rows, cols = _grid(len(datasets))
    fig, axes = _figure(rows, cols, 3.8, 3.2)
    for ax, dataset in zip(axes.flat, datasets, strict=False):
        sub = trained[trained["dataset"] == dataset]
        for r in sub.itertuples():
            ax.errorbar(
                r.train_wall_hours,
                r.psnr,
                yerr=[[r.psnr - r.psnr_ci_low], [r.psnr_ci_high - r.psnr]],
                fmt=markers.get(r.method, "o"),
                color=_color(methods.index(r.method)),
                label=r.method,
                capsize=2,
            )
        base = baselines[baselines["dataset"] == dataset]
        if not base.empty:
            best = base.sort_values("psnr").iloc[-1]
            ax.axhline(best["psnr"], color="grey", linestyle=":", label="best baseline")
            ax.annotate(
                best["method"],
                (0.02, best["psnr"]),
                xycoords=("axes fraction", "data"),
                fontsize="x-small",
                color="grey",
                va="bottom",
            )
        ax.set(title=dataset, xlabel="training wall hours (selected run)", ylabel="test PSNR [dB]")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(datasets) :]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize="small")
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    _save(fig, out)


def transfer_heatmap(transfer_csv: str | Path, out: str | Path) -> None:
    """One heat map per model of ``tables/transfer.csv``'s gain over raw (dB), annotated,
    on one diverging colour scale centred on 0 shared by every panel."""
    table = pd.read_csv(transfer_csv)
    models = sorted(table["model"].unique())
    names = sorted(set(table["trained_on"]) | set(table["tested_on"]))
    bound = max(float(table["gain_over_raw"].abs().max()), 1e-6)
    side = 0.9 * len(names) + 1.5
    fig, axes = _figure(1, len(models), side, side)
    image = None
    for k, (ax, model) in enumerate(zip(axes.ravel(), models, strict=True)):
        g = table[table["model"] == model].pivot(
            index="trained_on", columns="tested_on", values="gain_over_raw"
        )
        g = g.reindex(index=names, columns=names)
        image = ax.imshow(g.to_numpy(), cmap="RdBu", vmin=-bound, vmax=bound)
        for (i, j), value in np.ndenumerate(g.to_numpy()):
            if not np.isnan(value):
                colour = "white" if abs(value) > 0.6 * bound else "black"
                ax.text(j, i, f"{value:+.1f}", ha="center", va="center", fontsize=8, color=colour)
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(names)), names if k == 0 else [], fontsize=8)
        ax.set_xlabel("tested on")
        if k == 0:
            ax.set_ylabel("trained on")
        ax.set_title(model)
    if image is not None:
        fig.colorbar(image, ax=axes.ravel().tolist(), label="PSNR gain over raw (dB)")
    _save(fig, out)


def crop_box(shape: tuple[int, int], size: int) -> tuple[slice, slice]:
    """A centred ``size`` x ``size`` window (smaller if the image is)."""
    h, w = shape
    ch, cw = min(size, h), min(size, w)
    top, left = (h - ch) // 2, (w - cw) // 2
    return slice(top, top + ch), slice(left, left + cw)


def shared_contrast(gt: np.ndarray, others: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Ground truth and every other image on the metric scale (see module docstring)."""
    gt_n, _ = normalize_percentile(gt)
    return {"ground truth": gt_n, **{k: affine_fit(v, gt_n) for k, v in others.items()}}


def example_crops(
    data_dir: str | Path,
    predictions: Mapping[str, str | Path],
    out: str | Path,
    crop: int = 256,
) -> None:
    """Noisy, ground truth and ``predictions[method]/<image>.tif`` of the first test image."""
    images = split_images(data_dir, "test")
    if not images:
        raise ValueError(f"{data_dir}: no test images")
    name, low_path, gt_path = images[0]
    gt = read_image(gt_path)
    window = crop_box(gt.shape, crop)
    others = {"noisy": read_image(low_path)}
    others.update({m: read_image(Path(d) / f"{name}.tif") for m, d in predictions.items()})
    for m, img in others.items():
        if img.shape != gt.shape:
            raise ValueError(f"{m}: {name} has shape {img.shape}, ground truth {gt.shape}")
    panels = {k: v[window] for k, v in shared_contrast(gt, others).items()}
    order = ["noisy", "ground truth", *predictions]
    rows, cols = _grid(len(order), 6)
    fig, axes = _figure(rows, cols, 2.4, 2.8)
    for ax, key in zip(axes.flat, order, strict=False):
        ax.imshow(panels[key], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        ax.set_title(key, fontsize="small")
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in list(axes.flat)[len(order) :]:
        ax.axis("off")
    fig.suptitle(
        f"{Path(data_dir).name} / {name}: crop {window[0].start}:{window[0].stop}, "
        f"{window[1].start}:{window[1].stop}; one grey range for all panels"
    )
    fig.tight_layout()
    _save(fig, out)


def save_cover(noisy: np.ndarray, denoised: np.ndarray, out: str | Path) -> None:
    """Two panels, input and output (each on its own percentile range): a package cover."""
    fig, axes = _figure(1, 2, 2.0, 1.0)
    for ax, (title, img) in zip(axes.flat, (("input", noisy), ("output", denoised)), strict=True):
        lo, hi = np.percentile(img, [0.5, 99.5])
        ax.imshow(img, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
        ax.set_title(title)
        ax.set_axis_off()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
