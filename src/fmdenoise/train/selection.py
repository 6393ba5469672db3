"""Hyperparameter selection on the validation split only.

:func:`select_cell` reads the ``run.json`` of every candidate run of one (model, dataset) and
picks the (loss, lr) with the best validation PSNR (ties: higher SSIM, then the order given).
It sees nothing but those files, so test-set results cannot leak into the choice. After a
successive-halving search the candidates are the last rung's cells, and the selection file
also records what the whole search spent (:func:`fmdenoise.train.search.search_spend`). On a
dataset outside ``grid.sweep_datasets`` the candidates are the runs (one per seed) at the cell
selected on the source dataset, and the file names that source under ``transfer_from``.

With ``grid.keep_weights: selected`` the unselected candidates' weights are dropped once
the choice is made (:func:`drop_unselected_weights`): the study then keeps one ``model.pt`` per
model and dataset instead of one per cell (the real study: 24 GB of runs instead of 145).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fmdenoise.errors import FmdenoiseError
from fmdenoise.models.checkpoints import DROPPED_FORMAT, replace_with_note
from fmdenoise.train.search import search_spend

log = logging.getLogger(__name__)


def select_cell(
    run_files: Sequence[str | Path],
    promotion_files: Sequence[str | Path] = (),
    transfer_from: str | None = None,
    inference: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The best candidate by validation PSNR, with every candidate's score listed (and, given
    a halving search's promotion files, the search's spend under ``search``; given the
    dataset whose selected (loss, lr) the candidates were trained at, ``transfer_from``;
    ``inference``: how the study's test-set inference applies the selected model, the record
    ``fmdenoise denoise`` applies it by)."""
    candidates = []
    for f in run_files:
        run = json.loads(Path(f).read_text())
        if not run.get("best"):
            raise FmdenoiseError(f"{f}: run has no validation result")
        candidates.append(
            {
                "run": str(Path(f).parent),
                **run["cell"],
                "val_psnr": run["best"]["val_psnr"],
                "val_ssim": run["best"]["val_ssim"],
                "best_step": run["best_step"],
            }
        )
    if not candidates:
        raise FmdenoiseError("no candidate runs to select from")
    best = max(candidates, key=lambda c: (c["val_psnr"], c["val_ssim"]))
    out = {
        "selected": best,
        "criterion": "max validation PSNR (ties: SSIM)",
        "candidates": candidates,
    }
    if inference is not None:
        out["inference"] = dict(inference)
    if transfer_from is not None:
        out["transfer_from"] = {
            "dataset": transfer_from,
            "note": f"no sweep here: the (loss, lr) selected on {transfer_from}'s validation",
        }
    if promotion_files:
        out["search"] = {
            "method": "successive halving",
            "promotions": [str(f) for f in promotion_files],
            **search_spend(promotion_files, run_files),
        }
    return out


def drop_unselected_weights(selection: Mapping[str, Any]) -> int:
    """``grid.keep_weights: selected``: the weights (``model.pt``) of every candidate run
    but the selected one are replaced by a note naming the selected run (nothing later reads
    them: predictions, export and ``fmdenoise denoise`` use the selected run; the tables read
    ``run.json`` and ``curve.csv``, which stay). Returns the bytes freed."""
    chosen = selection["selected"]["run"]
    freed = 0
    for cand in selection["candidates"]:
        if cand["run"] != chosen:
            freed += replace_with_note(
                Path(cand["run"]) / "model.pt",
                DROPPED_FORMAT,
                selected=chosen,
                reason="grid.keep_weights: selected",
            )
    log.info("kept the weights of %s; dropped the others' (%.1f MB)", chosen, freed / 2**20)
    return freed


def summarize_runs(run_files: Sequence[str | Path]) -> dict[str, Any]:
    """Cell, validation result, steps and cost of each run (the studies' index)."""
    runs = []
    for f in run_files:
        run = json.loads(Path(f).read_text())
        runs.append(
            {
                "run": str(Path(f).parent),
                **run["cell"],
                "best": run["best"],
                "best_step": run["best_step"],
                "steps_done": run["steps_done"],
                "wall_seconds": run["wall_seconds"],
                "gpu_hours": run["gpu_hours"],
            }
        )
    return {"runs": runs}
