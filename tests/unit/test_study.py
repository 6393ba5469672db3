"""The study's structure asked of the config (fmdenoise.study): method names, the extra
seeds, the transfer targets, and the plan's jobs for them."""

from __future__ import annotations

import copy

import pytest

from fmdenoise.config import load_config, validate
from fmdenoise.plan.report import make_plan
from fmdenoise.settings import StudySettings
from fmdenoise.study import (
    ModelMethod,
    extra_seeds,
    method_kinds,
    parse_method,
    seed_methods,
    transfer_sources,
    transfer_targets,
)

from ..conftest import ROOT

#: the library takes the typed view of a validated config
typed = StudySettings.from_config


@pytest.fixture(scope="module")
def real():
    return load_config(ROOT / "config.yaml")


def test_method_names(real):
    assert parse_method(typed(real), "kbnet") == ModelMethod("kbnet", "selected")
    assert parse_method(typed(real), "kbnet-zeroshot") == ModelMethod("kbnet", "zeroshot")
    assert parse_method(typed(real), "care-seed2") == ModelMethod("care", "seed", seed=2)
    for baseline in ("raw", "bm3d", "bm3d-vst", "provided-care", "nomodel-seed1", "care-seedx"):
        assert parse_method(typed(real), baseline) is None, baseline
    kinds = method_kinds(typed(real), "nucleus")
    assert kinds["care"].name == "care" and kinds["bm3d-vst"].name == "bm3d-vst"
    assert kinds["drunet"].neural and kinds["drunet-zeroshot"].name == "zeroshot"
    assert kinds["bm3d"].classical and not kinds["raw"].neural and not kinds["raw"].classical
    assert "care-zeroshot" not in kinds  # CARE has no published weights


def test_extra_seeds_follow_the_sweeps(real):
    """config.yaml: 3 seeds in all, the selection's (0) and two more numbered after it."""
    assert real["grid"]["final_seeds"] == 3 and extra_seeds(typed(real)) == [1, 2]
    assert seed_methods(typed(real), "nucleus") == [
        f"{m}-seed{k}" for m in real["models"] for k in (1, 2)
    ]
    cfg = copy.deepcopy(real)
    cfg["grid"].update(seeds=[0, 5], final_seeds=2)
    assert extra_seeds(typed(validate(cfg))) == [6]
    cfg["grid"]["seed_datasets"] = ["nucleus"]  # the demo's way to stay within its time
    assert (
        extra_seeds(typed(validate(cfg)), "nucleus") == [6]
        and extra_seeds(typed(cfg), "actin-confocal") == []
    )
    assert seed_methods(typed(cfg), "actin-confocal") == []
    cfg["grid"]["final_seeds"] = 1
    assert extra_seeds(typed(validate(cfg))) == [] and seed_methods(typed(cfg), "nucleus") == []


def test_transfer_targets(real):
    names = list(real["datasets"])
    assert transfer_targets(typed(real), names[0]) == names[1:]
    assert transfer_sources(typed(real)) == names
    cfg = copy.deepcopy(real)
    cfg["evaluation"]["transfer"] = False
    assert transfer_targets(typed(cfg), names[0]) == [] and transfer_sources(typed(cfg)) == []


def test_plan_prices_the_extra_seeds_and_transfer(real):
    """Per model and dataset of grid.seed_datasets, 2 more train jobs (after selection) and
    2 more predict and metrics jobs; per model and dataset one transfer_predict job predicting
    the other 9 test sets on the GPU, and one transfer job scoring them."""
    plan = make_plan(typed(real))
    cfg = copy.deepcopy(real)
    cfg["grid"]["final_seeds"] = 1
    cfg["evaluation"]["transfer"] = False
    base = make_plan(typed(validate(cfg)))
    pairs = len(real["models"]) * len(real["datasets"])
    seeded = len(real["models"]) * len(real["grid"]["seed_datasets"])
    rules, before = plan["rules"], base["rules"]
    assert rules["train"]["jobs"] == before["train"]["jobs"] + 2 * seeded
    assert rules["predict"]["jobs"] == before["predict"]["jobs"] + 2 * seeded
    assert rules["metrics"]["jobs"] == before["metrics"]["jobs"] + 2 * seeded
    assert rules["transfer"]["jobs"] == pairs and "transfer" not in before
    assert rules["table_transfer"]["jobs"] == 1 and rules["figure_transfer"]["jobs"] == 1
    # predicted on the GPU, scored on CPUs: no GPU held for the metrics
    assert rules["transfer_predict"]["jobs"] == pairs
    assert rules["transfer_predict"]["gpu_hours"] > 0
    assert rules["transfer_predict"]["peak_gpu_mem_mb"] > 0
    assert rules["transfer"]["gpu_hours"] == 0 and rules["transfer"]["cpu_hours"] > 0
    assert plan["gpu_hours"] > base["gpu_hours"]
