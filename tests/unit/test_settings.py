"""The typed view of a validated config (fmdenoise.settings): it mirrors the schema's sections
exactly, gives back the validated mappings a run's signature is computed from (runs trained
before the typed config existed still resume), and the rules ask it."""

from __future__ import annotations

import copy
import dataclasses
import json

import pytest

from fmdenoise.config import load_config, load_settings, validate
from fmdenoise.settings import (
    FROM_EVALUATION,
    ResourceRequest,
    StudySettings,
    TrainingSettings,
)
from fmdenoise.study import inference_tile, method_noise_level
from fmdenoise.train.provenance import signature

from ..conftest import ROOT

CONFIGS = [ROOT / "config.yaml", ROOT / "demo" / "config.yaml"]


@pytest.mark.parametrize("path", CONFIGS, ids=["config.yaml", "demo"])
def test_typed_sections_mirror_the_validated_config(path):
    config = load_config(path)
    s = StudySettings.from_config(config)
    assert s.training.as_dict() == config["training"]
    for name, model in config["models"].items():
        as_dict = s.models[name].as_dict()
        assert json.dumps(as_dict, sort_keys=True) == json.dumps(model, sort_keys=True), name
        assert s.models[name].finetuned == (model["pretrained"]["source"] != "none")
    grid = config["grid"]
    assert s.grid.losses == grid["losses"] and s.grid.learning_rates == grid["learning_rates"]
    assert s.grid.final_seeds == grid["final_seeds"] and s.grid.search == grid["search"]
    assert s.grid.halving.eta == grid["halving"]["eta"]
    assert s.grid.halving.budgets == (grid["halving"].get("budgets") or None)
    for rule, request in config["resources"].items():
        assert dataclasses.asdict(s.resources.of(rule)) == request, rule
    assert s.resources.of("select") == s.resources.default  # a rule not listed
    assert dataclasses.asdict(s.planning) == config["planning"]
    assert dataclasses.asdict(s.evaluation) == config["evaluation"]
    # the sections jobs receive as params: the same text, so Snakemake reruns nothing
    for name in ("split", "normalization", "patches", "pretrain", "training"):
        typed = getattr(s, name).as_dict()
        assert json.dumps(typed, sort_keys=True) == json.dumps(config[name], sort_keys=True), name
    assert s.results == config["results"] and list(s.datasets) == list(config["datasets"])
    assert load_settings(path) == s


def test_signature_of_a_run_is_unchanged():
    """A run's signature (resume state, run.json) is computed from the sections as validated:
    the typed config gives back the same mapping, so the same signature."""
    config = load_config(ROOT / "config.yaml")
    s = StudySettings.from_config(config)
    for name in config["models"]:
        old = {"model": config["models"][name], "training": config["training"]}
        new = {"model": s.models[name].as_dict(), "training": s.training.as_dict()}
        assert signature(old) == signature(new)


def test_tile_and_noise_level_of_a_method():
    config = load_config(ROOT / "config.yaml")
    s = StudySettings.from_config(config)
    assert s.models["restormer"].tile is None  # tile: null, the whole image
    assert s.models["drunet"].tile == FROM_EVALUATION  # no tile of its own
    assert inference_tile(s, "restormer") is None and inference_tile(s, "restormer-seed1") is None
    assert inference_tile(s, "drunet") == config["evaluation"]["tile"] == s.tile("drunet")
    assert inference_tile(s, "bm3d") == config["evaluation"]["tile"]
    assert "tile" not in s.models["drunet"].as_dict()
    assert method_noise_level(s, "drunet")["mode"] == "fixed"
    assert method_noise_level(s, "drunet-zeroshot")["mode"] == "estimate"  # zero_shot_mode


def test_settings_are_frozen_and_values_kept_as_validated():
    config = load_config(ROOT / "config.yaml")
    s = StudySettings.from_config(config)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.training.steps = 1  # type: ignore[misc]
    with pytest.raises(AttributeError):
        _ = s.training.grad_clp  # type: ignore[attr-defined]  # a misspelt key
    changed = copy.deepcopy(config)
    changed["training"]["weight_decay"] = 0  # an int stays an int: the same signature as before
    typed = StudySettings.from_config(validate(changed)).training
    assert type(typed.weight_decay) is int and typed.as_dict() == changed["training"]
    assert TrainingSettings.from_dict(config["training"]) == s.training
    assert isinstance(s.resources.of("train"), ResourceRequest)


def test_an_unvalidated_config_is_refused():
    """from_config reads a validated config (defaults filled in); a raw one misses keys."""
    config = load_config(ROOT / "config.yaml")
    raw = copy.deepcopy(config)
    del raw["training"]["patience"]
    with pytest.raises(KeyError, match="patience"):
        StudySettings.from_config(raw)
