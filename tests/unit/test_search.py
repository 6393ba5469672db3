"""Successive halving: rung budgets, promotion (ties, NaN, fewer cells than eta), the
continuation of a promoted cell bit-identical to an uninterrupted run, the search table, the
config checks and the plan's price of a halving search."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os

import pandas as pd
import pytest
import torch

from fmdenoise.config import load_config, validate
from fmdenoise.costs.calibration import Calibration
from fmdenoise.costs.estimates import CostModel
from fmdenoise.data.synthetic import write_toy_patches
from fmdenoise.errors import ConfigError, FmdenoiseError
from fmdenoise.evaluate.search_table import search_tables
from fmdenoise.halving import (
    cells_per_rung,
    config_budgets,
    grid_order,
    keep,
    rung_budgets,
    stratum,
)
from fmdenoise.io import write_json
from fmdenoise.models.checkpoints import load_model
from fmdenoise.plan.report import make_plan
from fmdenoise.settings import StudySettings
from fmdenoise.train.loop import train, train_rung
from fmdenoise.train.search import DROPPED_STATE, promote, promotion, search_spend
from fmdenoise.train.selection import select_cell
from fmdenoise.train.setup import Cell

from ..conftest import ROOT
from .test_training import MODEL, TRAINING

#: the library takes the typed view of a validated config
typed = StudySettings.from_config


def test_rung_budgets_grow_by_eta_up_to_the_full_budget():
    assert rung_budgets(20000, 2500, 3) == [2500, 7500, 20000]
    assert rung_budgets(60, 20, 2) == [20, 40, 60]
    assert rung_budgets(60, 20, 3) == [20, 60]
    assert rung_budgets(60, 60, 3) == [60]  # one rung: the full grid
    assert rung_budgets(60, 100, 3) == [60]
    with pytest.raises(ConfigError):
        rung_budgets(60, 20, 1)


def test_cells_kept_per_rung():
    assert [keep(n, 3) for n in (0, 1, 2, 3, 5, 9, 16)] == [0, 1, 1, 1, 1, 3, 5]
    assert cells_per_rung(16, 3, 3) == [16, 5, 1]
    assert cells_per_rung(9, 4, 3) == [9, 3, 1, 1]
    assert cells_per_rung(2, 2, 3) == [2, 1]  # fewer cells than eta: the best one goes on


ORDER = [(loss, lr, 0) for loss in ("mae", "ssim") for lr in (1e-3, 1e-4)]


def summary(loss, lr, psnr, seed=0):
    best = None if psnr is None else {"val_psnr": psnr, "val_ssim": 0.5}
    return {
        "run": f"runs/{loss}/{lr}",
        "cell": {"loss": loss, "lr": lr, "seed": seed},
        "best": best,
    }


def test_promotion_by_hand():
    cells = [
        summary("mae", 1e-3, 30.0),
        summary("mae", 1e-4, 31.0),
        summary("ssim", 1e-3, 31.0),  # tie with mae/1e-4: mae/1e-4 comes first in the grid
        summary("ssim", 1e-4, 35.0),
    ]
    ranked = promote(cells, 2, ORDER)
    assert [(c["cell"]["loss"], c["cell"]["lr"]) for c in ranked] == [
        ("ssim", 1e-4), ("mae", 1e-4), ("ssim", 1e-3), ("mae", 1e-3)
    ]  # fmt: skip
    assert [c["promoted"] for c in ranked] == [True, True, False, False]
    assert [c["rank"] for c in ranked] == [1, 2, 3, 4]
    # the tie the other way round in the grid order: ssim/1e-3 now wins it
    flipped = [ORDER[2], ORDER[1], ORDER[0], ORDER[3]]
    assert promote(cells, 2, flipped)[1]["cell"]["loss"] == "ssim"
    # eta 3 of 4 cells: one goes on
    assert [c["promoted"] for c in promote(cells, 3, ORDER)] == [True, False, False, False]


def test_stratified_promotion_keeps_a_late_bloomer_loss():
    """Learning rates raced within each loss: MAE, behind both SSIM cells at this rung (it
    converges later), still sends its best learning rate on; a hopeless cell is dropped."""
    cells = [
        summary("mae", 1e-3, 20.0),
        summary("mae", 1e-4, 12.0),  # hopeless
        summary("ssim", 1e-3, 23.0),
        summary("ssim", 1e-4, 22.0),
    ]
    plain = {
        (c["cell"]["loss"], c["cell"]["lr"]) for c in promote(cells, 2, ORDER) if c["promoted"]
    }
    assert plain == {("ssim", 1e-3), ("ssim", 1e-4)}  # MAE dropped: ranked with the losses
    ranked = promote(cells, 2, ORDER, stratify="loss")
    kept = {(c["cell"]["loss"], c["cell"]["lr"]) for c in ranked if c["promoted"]}
    assert kept == {("mae", 1e-3), ("ssim", 1e-3)}
    assert [c["rank"] for c in ranked] == [1, 2, 3, 4]  # the overall ranking is still reported
    assert not next(c for c in ranked if c["cell"]["lr"] == 1e-4 and c["cell"]["loss"] == "mae")[
        "promoted"
    ]
    with pytest.raises(ConfigError, match="stratify"):
        promote(cells, 2, ORDER, stratify="lr")
    # the plan's count: 3 losses x 3 learning rates, eta 3: one per loss from the first rung on
    assert cells_per_rung(9, 3, 3, groups=3) == [9, 3, 3]
    assert cells_per_rung(9, 3, 3) == [9, 3, 1]
    # stratified at the first rung only: one per loss, then the losses' winners ranked together
    assert cells_per_rung(9, 3, 3, groups=[3, 1]) == [9, 3, 1]
    assert cells_per_rung(16, 3, 3, groups=[4, 1]) == [16, 4, 1]


def test_explicit_budgets_and_stratified_rungs_from_the_config():
    cfg = real_config(budgets=[2500, 9000], stratify="loss", stratify_rungs=1)
    assert config_budgets(typed(cfg)) == [2500, 9000, 20000]
    assert [stratum(typed(cfg), r) for r in range(2)] == ["loss", None]
    assert stratum(typed(real_config(stratify="loss")), 1) == "loss"  # null: every rung
    with pytest.raises(ConfigError, match=r"budgets: 2600 is not a multiple"):
        real_config(budgets=[2600])
    with pytest.raises(ConfigError, match="must increase and stay below"):
        real_config(budgets=[9000, 2500])
    with pytest.raises(ConfigError, match="must increase and stay below"):
        real_config(budgets=[20000])


def test_diverged_or_missing_validation_ranks_last_and_fewer_cells_than_eta():
    cells = [summary("mae", 1e-3, math.nan), summary("mae", 1e-4, None), summary("ssim", 1e-3, 5.0)]
    ranked = promote(cells, 3, ORDER)
    assert ranked[0]["cell"]["loss"] == "ssim" and ranked[0]["promoted"]
    assert [c["promoted"] for c in ranked[1:]] == [False, False]
    # a single cell left (fewer than eta) is promoted
    assert promote([summary("mae", 1e-3, 20.0)], 3, ORDER)[0]["promoted"]
    with pytest.raises(ConfigError, match="not in the grid"):
        promote([summary("mse", 1e-3, 20.0)], 3, ORDER)


def test_promotion_file_reads_only_the_summaries(tmp_path):
    files = []
    for i, c in enumerate([summary("mae", 1e-3, 30.0), summary("ssim", 1e-3, 32.0)]):
        files.append(tmp_path / f"s{i}.json")
        write_json(files[-1], c)
    out = promotion(0, 20, files, 3, ORDER)
    assert out["promoted"] == ["runs/ssim/0.001"] and out["budget"] == 20
    assert "validation PSNR" in out["criterion"]


def toy(tmp_path):
    return write_toy_patches(tmp_path / "patches", 32, 16)


CELL = Cell("drunet", "toy", "mae", 1e-3, "scratch", "rot", 0)


def test_promoted_cell_continues_bit_identical_to_an_uninterrupted_run(tmp_path):
    patches = toy(tmp_path)
    torch.set_num_threads(1)
    full = train(CELL, MODEL, TRAINING, patches, tmp_path / "full", threads=1)
    rung_dir, previous, mtimes = tmp_path / "rungs", None, {}
    for r, budget in enumerate(rung_budgets(40, 10, 2)[:-1]):  # rungs at 10 and 20 steps
        s = train_rung(
            CELL,
            MODEL,
            TRAINING,
            patches,
            rung_dir,
            rung=r,
            budget=budget,
            state_out=rung_dir / f"rung{r}.pt",
            summary_out=rung_dir / f"rung{r}.json",
            start_from=previous,
            threads=1,
        )
        assert s["steps_done"] == budget and s["best"]["val_psnr"] > 0
        assert not (rung_dir / "model.pt").exists()
        if previous is not None:  # continued: the previous rung's state is now a note
            assert torch.load(previous, weights_only=True) == {
                "format": DROPPED_STATE,
                "reason": f"continued by rung {r}",
            }
            assert previous.stat().st_mtime_ns == mtimes[previous]  # Snakemake sees no change
        previous = rung_dir / f"rung{r}.pt"
        # the published state is its own file: later training did not change it
        assert torch.load(previous, weights_only=True)["step"] == budget
        mtimes[previous] = previous.stat().st_mtime_ns
        (rung_dir / "last.pt").unlink()  # the next rung starts from the published state
    run = train(CELL, MODEL, TRAINING, patches, rung_dir, threads=1, start_from=previous)
    assert run["steps_done"] == full["steps_done"] == 40 and run["resumed_from"] == 20
    a, _ = load_model(tmp_path / "full" / "model.pt")
    b, _ = load_model(rung_dir / "model.pt")
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k
    ca = pd.read_csv(tmp_path / "full" / "curve.csv").drop(columns="seconds")
    cb = pd.read_csv(rung_dir / "curve.csv").drop(columns="seconds")
    pd.testing.assert_frame_equal(ca, cb)
    # the finished run keeps no optimizer state: no last.pt, the last rung's state a note
    assert not (rung_dir / "last.pt").exists()
    assert torch.load(previous, weights_only=True)["reason"] == "continued by train"
    with pytest.raises(FmdenoiseError, match=r"dropped \(continued by train\).*delete"):
        train(CELL, MODEL, TRAINING, patches, tmp_path / "again", start_from=previous)


def test_rung_after_early_stop_trains_nothing(tmp_path, monkeypatch):
    """Validation PSNR that only falls: with patience 1 the run stops at step 10 in rung 0,
    and rung 1 continues nothing (same step, same summary)."""
    import fmdenoise.train.loop as loop

    calls = iter(range(1000))
    monkeypatch.setattr(
        loop,
        "validation_metrics",
        lambda *a, **k: {"val_loss": 1.0, "val_psnr": 30.0 - next(calls), "val_ssim": 0.5},
    )
    patches = toy(tmp_path)
    cfg = dataclasses.replace(TRAINING, patience=1, val_every=5)
    s0 = train_rung(
        CELL, MODEL, cfg, patches, tmp_path, rung=0, budget=20,
        state_out=tmp_path / "rung0.pt", summary_out=tmp_path / "rung0.json", threads=1,
    )  # fmt: skip
    assert s0["early_stopped"] and s0["steps_done"] == 10 and s0["best_step"] == 5
    s1 = train_rung(
        CELL, MODEL, cfg, patches, tmp_path, rung=1, budget=40, start_from=tmp_path / "rung0.pt",
        state_out=tmp_path / "rung1.pt", summary_out=tmp_path / "rung1.json", threads=1,
    )  # fmt: skip
    assert s1["early_stopped"] and s1["steps_done"] == 10 and s1["best"] == s0["best"]


def test_start_from_another_configuration_is_refused(tmp_path):
    patches = toy(tmp_path)
    train_rung(
        CELL, MODEL, TRAINING, patches, tmp_path / "a", rung=0, budget=10,
        state_out=tmp_path / "a" / "rung0.pt", summary_out=tmp_path / "a" / "r.json", threads=1,
    )  # fmt: skip
    other = dataclasses.replace(TRAINING, steps=50)
    with pytest.raises(Exception, match=r"rung0\.pt: not a state of this run"):
        train_rung(
            CELL, MODEL, other, patches, tmp_path / "b", rung=1, budget=20,
            start_from=tmp_path / "a" / "rung0.pt",
            state_out=tmp_path / "b" / "rung1.pt", summary_out=tmp_path / "b" / "r.json",
        )  # fmt: skip


def test_search_table_and_spend(tmp_path):
    """Two rungs of 4 cells (eta 2) then 2 finalists: the table lists every cell's PSNR per
    rung, the promotions and the pick; the spend is summed per cell at its last rung."""
    search, runs = tmp_path / "search" / "drunet" / "toy", tmp_path / "runs"
    cells = {
        ("mae", 1e-3): (30.0, None),
        ("mae", 1e-4): (31.0, 33.0),
        ("ssim", 1e-3): (29.0, None),
        ("ssim", 1e-4): (32.0, 34.0),
    }
    summaries = []
    for (loss, lr), (p0, _) in cells.items():
        s = summary(loss, lr, p0)
        s.update(run=str(runs / f"{loss}{lr}"), steps_done=20, wall_seconds=10.0, gpu_hours=0.0)
        summaries.append(s)
    ranked = promote(summaries, 2, ORDER)
    write_json(search / "rung0.json", {"rung": 0, "budget": 20, "cells": ranked})
    finals = []
    for (loss, lr), (_, p1) in cells.items():
        if p1 is None:
            continue
        run = {
            "cell": {"loss": loss, "lr": lr, "seed": 0},
            "best": {"val_psnr": p1, "val_ssim": 0.9},
            "best_step": 60,
            "steps_done": 60,
            "wall_seconds": 30.0,
            "gpu_hours": 0.0,
        }
        write_json(runs / f"{loss}{lr}" / "run.json", run)
        finals.append(runs / f"{loss}{lr}" / "run.json")
    sel = select_cell(finals, [search / "rung0.json"])
    assert sel["search"]["cells"] == 4 and sel["search"]["steps"] == 2 * 20 + 2 * 60
    assert sel["search"]["wall_seconds"] == 2 * 10.0 + 2 * 30.0
    write_json(tmp_path / "selected" / "drunet" / "toy.json", sel)
    table, spend = search_tables(
        [search / "rung0.json"], [tmp_path / "selected" / "drunet" / "toy.json"], 60
    )
    assert list(table.columns) == [
        "model", "dataset", "loss", "lr", "seed", "psnr@20", "promoted@20", "psnr@60", "picked"
    ]  # fmt: skip
    by = table.set_index(["loss", "lr"])
    assert by.loc[("ssim", 1e-4), "picked"] and by["picked"].sum() == 1
    assert list(by["promoted@20"]) == [True, True, False, False]
    assert math.isnan(by.loc[("mae", 1e-3), "psnr@60"]) and by.loc[("mae", 1e-4), "psnr@60"] == 33
    row = spend.iloc[0]
    assert row["grid_steps"] == 4 * 60 and row["step_ratio"] == pytest.approx(160 / 240)
    assert row["grid_wall_hours"] == pytest.approx(80 / 160 * 240 / 3600)


def test_search_spend_counts_each_cell_once(tmp_path):
    a = {"run": "r/a", "steps_done": 10, "wall_seconds": 1.0, "gpu_hours": 0.1}
    b = {"run": "r/b", "steps_done": 10, "wall_seconds": 1.0, "gpu_hours": 0.1}
    write_json(tmp_path / "rung0.json", {"rung": 0, "cells": [a, b]})
    write_json(tmp_path / "rung1.json", {"rung": 1, "cells": [{**a, "steps_done": 30}]})
    spend = search_spend([tmp_path / "rung1.json", tmp_path / "rung0.json"], [])
    assert spend == {"cells": 2, "steps": 40, "wall_seconds": 2.0, "gpu_hours": 0.2}


PLAIN = {"min_steps": 2500, "budgets": None, "stratify": None, "stratify_rungs": None}


def search_only(cfg):
    """config.yaml without what follows selection whatever the search (the extra seeds and
    transfer), so that plans compare the searches' own price."""
    cfg["grid"]["final_seeds"] = 1
    cfg["evaluation"]["transfer"] = False
    return cfg


def real_config(**halving):
    """config.yaml with plain successive halving (eta 3 from 2,500 steps), then ``halving``."""
    cfg = search_only(load_config(ROOT / "config.yaml"))
    cfg["grid"]["search"] = "halving"
    cfg["grid"]["halving"].update(PLAIN, **halving)
    return validate(cfg)


def full_config():
    cfg = search_only(load_config(ROOT / "config.yaml"))
    cfg["grid"]["search"] = "full"
    return validate(cfg)


def test_min_steps_must_end_on_a_validation():
    with pytest.raises(ConfigError, match=r"grid\.halving\.min_steps: 700 is not a multiple"):
        real_config(min_steps=700)
    assert real_config()["grid"]["halving"] == {
        "eta": 3,
        "min_steps": 2500,
        "stratify": None,
        "stratify_rungs": None,
        "budgets": None,
    }
    assert grid_order(typed(real_config()))[:2] == [("mae", 0.001, 0), ("mae", 0.0003, 0)]


def test_plan_prices_halving_at_under_0_4_of_the_full_grid():
    full_cfg = full_config()
    full = make_plan(typed(full_cfg))
    half = make_plan(typed(real_config()))
    ratio = half["gpu_hours"] / full["gpu_hours"]
    assert ratio <= 0.4, ratio
    # 16 cells per model and dataset: 16 at 2500 steps, 5 to 7500, 1 to 20000
    rungs = half["rules"]["rung"]["jobs"]
    n_pairs = len(full_cfg["models"]) * len(full_cfg["datasets"])
    assert rungs == n_pairs * (16 + 5)
    assert half["rules"]["promote"]["jobs"] == 2 * n_pairs
    assert half["rules"]["train"]["jobs"] == full["rules"]["train"]["jobs"] - 15 * n_pairs
    assert half["search"] == "halving" and full["search"] == "full"
    halved = copy.deepcopy(half)
    json.dumps(halved)  # JSON-able
    # config.yaml's own search: learning rates raced within each loss at 4,500 steps, the four
    # losses' winners at 9,000, the best to 20,000: 16 + 4 rung jobs and 1 final per pair
    ours = make_plan(typed(search_only(load_config(ROOT / "config.yaml"))))
    assert ours["rules"]["rung"]["jobs"] == n_pairs * (16 + 4)
    assert ours["rules"]["train"]["jobs"] == full["rules"]["train"]["jobs"] - 15 * n_pairs
    assert ours["gpu_hours"] / full["gpu_hours"] <= 0.4
    # disk: no rung state stays (a note at promotion, or once the next job continued the
    # cell), so the end state is the full grid's plus 1 kB notes; the most a search holds at
    # once is its 16 rung-0 states (weights, two moments, best: 16 bytes a parameter)
    notes = (ours["rules"]["rung"]["jobs"] - 15 * n_pairs) * 1e3 / 1e9
    runs = ours["disk_gb_by_stage"]["runs"]
    assert runs == pytest.approx(full["disk_gb_by_stage"]["runs"] + notes), runs
    assert runs < 30 and ours["disk_gb"] < 150
    costs = CostModel(typed(ours_cfg := load_config(ROOT / "config.yaml")), Calibration.load())
    params = sum(costs.parameters(m) for m in ours_cfg["models"])
    held = len(ours_cfg["datasets"]) * 16 * 16 * params / 1e9
    assert ours["disk_awaiting_selection_gb"] == pytest.approx(held)


def test_states_of_cells_not_promoted_are_dropped(tmp_path):
    """Once a rung's promotion is decided, a cell that goes no further keeps a note in place of
    its state (the file stays: Snakemake sees the rung job finished) and no last.pt; a
    promoted cell's state is untouched; continuing from a note is a clear error."""
    from fmdenoise.train.search import drop_unpromoted_states
    from fmdenoise.train.state import load_last

    cells = []
    for name in ("kept", "dropped"):
        run = tmp_path / name
        run.mkdir()
        torch.save({"signature": "s", "step": 10, "model": torch.zeros(1000)}, run / "last.pt")
        os.link(run / "last.pt", run / "rung0.pt")
        cells.append({"run": str(run), "promoted": name == "kept"})
    freed = drop_unpromoted_states({"rung": 0, "cells": cells})
    assert freed > 4000
    kept, dropped = tmp_path / "kept", tmp_path / "dropped"
    assert torch.load(kept / "rung0.pt", weights_only=True)["step"] == 10
    assert (kept / "last.pt").exists()
    assert torch.load(dropped / "rung0.pt", weights_only=True)["format"] == DROPPED_STATE
    assert not (dropped / "last.pt").exists()
    with pytest.raises(FmdenoiseError, match=r"dropped \(not promoted at rung 0\)"):
        load_last(dropped / "rung0.pt", "s", None)
    assert drop_unpromoted_states({"rung": 0, "cells": cells}) == 0
