"""The successive-halving search table (``tables/search.{csv,md,tex}``, ``search_spend.csv``).

Per model and dataset: each cell's validation PSNR at every rung it reached (the last column
is the full budget), whether it was promoted, and the final pick; then what the search spent
(steps, wall hours, GPU-hours) next to what the full grid would have spent: every cell to
``training.steps``, at the seconds per step the search measured on the same cells.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from fmdenoise.io import write_text


def _pair(path: str | Path) -> tuple[str, str]:
    """(model, dataset) of ``.../search/<model>/<dataset>/rung<r>.json`` or
    ``.../selected/<model>/<dataset>.json``."""
    p = Path(path)
    if p.parent.parent.parent.name == "search":
        return p.parent.parent.name, p.parent.name
    return p.parent.name, p.stem


def search_tables(
    promotion_files: Sequence[str | Path], selected_files: Sequence[str | Path], steps: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(cells, spend): one row per searched cell, one row per model and dataset."""
    rows: dict[str, dict[str, object]] = {}
    budgets: dict[int, int] = {}
    for f in promotion_files:
        promo = json.loads(Path(f).read_text())
        r, model_dataset = int(promo["rung"]), _pair(f)
        budgets[r] = int(promo["budget"])
        for c in promo["cells"]:
            row = rows.setdefault(c["run"], _cell_row(model_dataset, c["cell"]))
            row[f"psnr@{promo['budget']}"] = (c.get("best") or {}).get("val_psnr")
            row[f"promoted@{promo['budget']}"] = bool(c["promoted"])
    spend = []
    for f in selected_files:
        sel = json.loads(Path(f).read_text())
        if "search" not in sel:
            continue
        model, dataset = _pair(f)
        for c in sel["candidates"]:
            row = rows.setdefault(c["run"], _cell_row((model, dataset), c))
            row[f"psnr@{steps}"] = c["val_psnr"]
        rows[sel["selected"]["run"]]["picked"] = True
        s = sel["search"]
        per_step = s["wall_seconds"] / s["steps"] if s["steps"] else float("nan")
        gpu_per_step = s["gpu_hours"] / s["steps"] if s["steps"] else float("nan")
        grid_steps = s["cells"] * steps
        spend.append(
            {
                "model": model,
                "dataset": dataset,
                "cells": s["cells"],
                "search_steps": s["steps"],
                "grid_steps": grid_steps,
                "step_ratio": s["steps"] / grid_steps,
                "search_wall_hours": s["wall_seconds"] / 3600,
                "grid_wall_hours": per_step * grid_steps / 3600,
                "search_gpu_hours": s["gpu_hours"],
                "grid_gpu_hours": gpu_per_step * grid_steps,
                "picked": "{loss} lr={lr:g} seed={seed}".format(**sel["selected"]),
            }
        )
    order = [f"{k}@{b}" for _, b in sorted(budgets.items()) for k in ("psnr", "promoted")]
    columns = ["model", "dataset", "loss", "lr", "seed", *order, f"psnr@{steps}", "picked"]
    cells = pd.DataFrame(list(rows.values()), columns=columns)
    cells["picked"] = cells["picked"].eq(True)
    return cells, pd.DataFrame(spend)


def _cell_row(model_dataset: tuple[str, str], cell: dict) -> dict[str, object]:
    model, dataset = model_dataset
    return {
        "model": model,
        "dataset": dataset,
        "loss": cell["loss"],
        "lr": cell["lr"],
        "seed": cell["seed"],
        "picked": False,
    }


def write_search_tables(cells: pd.DataFrame, spend: pd.DataFrame, stem: str | Path) -> None:
    """``<stem>.csv`` (cells), ``<stem>_spend.csv``, and md/tex with both."""
    stem = Path(stem)
    write_text(stem.with_suffix(".csv"), cells.to_csv(index=False))
    write_text(stem.with_name(stem.name + "_spend.csv"), spend.to_csv(index=False))
    shown = cells.copy()
    for col in shown.columns:
        if col.startswith("psnr@"):
            shown[col] = [("" if pd.isna(v) else f"{v:.2f}") for v in shown[col]]
        if col.startswith("promoted@") or col == "picked":
            shown[col] = ["yes" if v is True else "" for v in shown[col]]
    cost = spend.copy()
    for col in cost.columns:
        if col.endswith("_hours") or col == "step_ratio":
            cost[col] = [f"{v:.3g}" for v in cost[col]]
    caption = (
        "Successive halving: validation PSNR of each cell at each rung it reached "
        "(psnr@<steps>), promotions, the pick; and the search's spend next to the full grid's "
        "(every cell to the full budget, at the seconds per step the search measured)."
    )
    write_text(
        stem.with_suffix(".md"),
        f"{caption}\n\n"
        + shown.to_markdown(index=False, disable_numparse=True)
        + "\n\n"
        + cost.to_markdown(index=False, disable_numparse=True)
        + "\n",
    )
    write_text(
        stem.with_suffix(".tex"),
        shown.to_latex(index=False, caption=caption, label=f"tab:{stem.name}")
        + "\n"
        + cost.to_latex(index=False, caption="Search spend", label=f"tab:{stem.name}-spend"),
    )


__all__ = ["search_tables", "write_search_tables"]
