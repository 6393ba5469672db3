"""Successive halving over the (loss, lr, seed) cells of one model and dataset.

With ``grid.search: halving`` the main sweep is trained in rungs instead of to the full budget
at once. Rung ``r`` has the step budget ``min(min_steps * eta**r, training.steps)``; the last
rung's budget is ``training.steps``. Every cell trains to rung 0's budget; after each rung the
best ``max(1, floor(n / eta))`` of its ``n`` cells by validation PSNR go on, each continuing its
own run from the state it left (``rung<r>.pt``), so a cell that reaches the last rung ends with
exactly the weights and curve of an uninterrupted full-budget run (the schedule is defined over
``training.steps`` and batches are a function of (seed, step)).

Ranking (:func:`promote`): the best validation PSNR reached so far (the same number selection
uses), higher first; a cell whose validation is missing or not finite ranks last; ties go to
the cell listed first in the grid (losses, then learning rates, then seeds, in config order).
Only validation results are read: test-set numbers never enter the choice.

Stratified by loss (``grid.halving.stratify: loss``): a promotion keeps the best
``max(1, floor(n_l / eta))`` of each loss's ``n_l`` cells, so the learning rates (and seeds)
are raced within each loss; ``stratify_rungs`` limits that to the first rungs, after which the
losses' survivors are ranked together. Rung budgets may be given explicitly
(``grid.halving.budgets``). Why (``benchmarks/search.py``): fine-tuning first lowers the
validation PSNR of the pretrained weights, the more so the higher the learning rate, and the
cells that fall furthest often end best; losses converge at different speeds too. At 1/9 of
the budget the ranking says little about the end; the demo and ``config.yaml`` race the
learning rates within each loss at 2/9 and compare the losses' winners at 4/9.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from fmdenoise.errors import ConfigError
from fmdenoise.halving import STRATA, keep

log = logging.getLogger(__name__)

#: how the promotion ranks cells, written into every promotion file
CRITERION = (
    "best validation PSNR so far, higher first (missing or non-finite last); "
    "ties: the cell listed first in the grid (losses, then learning rates, then seeds)"
)


def _score(summary: Mapping[str, Any]) -> float:
    best = summary.get("best") or {}
    value = best.get("val_psnr")
    return float(value) if value is not None and math.isfinite(float(value)) else -math.inf


def promote(
    summaries: Sequence[Mapping[str, Any]],
    eta: int,
    order: Sequence[tuple[str, float, int]],
    stratify: str | None = None,
) -> list[dict[str, Any]]:
    """Rank one rung's cells (their rung summaries) and mark the best ``keep(n, eta)`` as
    promoted (with ``stratify``: the best ``keep(n_s, eta)`` of each stratum's ``n_s``, e.g.
    of each loss). Returns the summaries, ranked, each with ``rank`` and ``promoted`` added."""
    position = {tuple(c): i for i, c in enumerate(order)}

    def key(s: Mapping[str, Any]) -> tuple[float, int]:
        cell = s["cell"]
        where = position.get((cell["loss"], cell["lr"], cell["seed"]))
        if where is None:
            raise ConfigError(f"{s.get('run')}: cell {cell} is not in the grid")
        return (-_score(s), where)

    if stratify is not None and stratify not in STRATA:
        raise ConfigError(f"grid.halving.stratify: {stratify!r} is not one of {STRATA}")
    ranked = sorted(summaries, key=key)
    group = [s["cell"][stratify] if stratify else None for s in ranked]
    sizes = {g: group.count(g) for g in group}
    seen: dict[Any, int] = {}
    out = []
    for i, (s, g) in enumerate(zip(ranked, group, strict=True)):
        seen[g] = seen.get(g, 0) + 1
        out.append({**s, "rank": i + 1, "promoted": seen[g] <= keep(sizes[g], eta)})
    return out


def promotion(
    rung: int,
    budget: int,
    summary_files: Iterable[str | Path],
    eta: int,
    order: Sequence[tuple[str, float, int]],
    stratify: str | None = None,
) -> dict[str, Any]:
    """The content of ``search/<model>/<dataset>/rung<r>.json`` from the rung's summaries."""
    summaries = [json.loads(Path(f).read_text()) for f in summary_files]
    if not summaries:
        raise ConfigError(f"rung {rung}: no cells to rank")
    ranked = promote(summaries, eta, order, stratify)
    criterion = CRITERION + (f"; within each {stratify}" if stratify else "")
    return {
        "rung": rung,
        "budget": budget,
        "eta": eta,
        "stratify": stratify,
        "criterion": criterion,
        "cells": ranked,
        "promoted": [s["run"] for s in ranked if s["promoted"]],
    }


#: the ``format`` of a rung state whose cell was not promoted (a note in place of the state)
DROPPED_STATE = "fmdenoise-dropped-rung-state"


def drop_unpromoted_states(decided: Mapping[str, Any]) -> int:
    """Once a rung's promotion is decided, a cell that was not promoted trains no further: its
    state of this rung (``rung<r>.pt``: weights, optimizer moments, best weights, 4x the
    weights) becomes a small note saying so, and its ``last.pt`` (the same state) goes. The
    note keeps the file, so Snakemake still sees the rung job as finished; the promoted cells'
    states are untouched (the next rung continues from them), as are every cell's earlier
    states (the inputs of this rung's jobs). Returns the bytes freed."""
    # here: the planner and the DAG import this module, and need no torch
    from fmdenoise.models.checkpoints import replace_with_note

    rung, freed = int(decided["rung"]), 0
    for cell in decided["cells"]:
        state = Path(cell["run"]) / f"rung{rung}.pt"
        if cell["promoted"] or not state.is_file():
            continue
        dropped = replace_with_note(
            state, DROPPED_STATE, rung=rung, reason=f"not promoted at rung {rung}"
        )
        if dropped:
            (state.parent / "last.pt").unlink(missing_ok=True)  # the same state
        freed += dropped
    log.info("rung %d: dropped the states of the cells not promoted (%.1f MB)", rung, freed / 2**20)
    return freed


def drop_continued_state(state: str | Path, by: str) -> int:
    """Once a job that continued a cell from its previous rung's ``state`` (the next rung, or
    ``train`` after the last rung) has written its outputs, that state is needed by nothing:
    the cell's newer state or its finished run holds everything. It becomes a note (with its
    modification time, so the job that read it stays up to date). Returns the bytes freed."""
    from fmdenoise.models.checkpoints import replace_with_note

    path = Path(state)
    if not path.is_file():
        return 0
    freed = replace_with_note(path, DROPPED_STATE, reason=f"continued by {by}")
    if freed:
        log.info("dropped %s, continued by %s (%.1f MB)", path, by, freed / 2**20)
    return freed


def rung_summary(run: str | Path, rung: int, budget: int, state: Any, run_info: Mapping) -> dict:
    """What a rung job reports (``rung<r>.json``): the cell, how far it trained, its best
    validation so far, and the cumulative time of the cell's training."""
    return {
        "run": str(run),
        "rung": rung,
        "budget": budget,
        **run_info,
        "steps_done": state.step,
        "best": state.best,
        "best_step": state.best_step,
        "wall_seconds": round(state.elapsed, 3),
    }


def search_spend(promotion_files: Sequence[str | Path], final_runs: Sequence[str | Path]) -> dict:
    """Cells, steps, wall seconds and GPU-hours the search spent on one model and dataset
    (each cell counted at the last rung it reached; the finalists from their ``run.json``)."""
    last: dict[str, dict[str, Any]] = {}
    for f in sorted(promotion_files, key=lambda p: json.loads(Path(p).read_text())["rung"]):
        for cell in json.loads(Path(f).read_text())["cells"]:
            last[cell["run"]] = cell
    for f in final_runs:
        run = json.loads(Path(f).read_text())
        last[str(Path(f).parent)] = run
    return {
        "cells": len(last),
        "steps": sum(int(c["steps_done"]) for c in last.values()),
        "wall_seconds": sum(float(c["wall_seconds"]) for c in last.values()),
        "gpu_hours": sum(float(c.get("gpu_hours") or 0.0) for c in last.values()),
    }


__all__ = [
    "CRITERION",
    "drop_continued_state",
    "drop_unpromoted_states",
    "promote",
    "promotion",
    "rung_summary",
    "search_spend",
]
