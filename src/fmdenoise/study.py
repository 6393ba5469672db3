"""The study's structure, asked of the config in one place: which models are fine-tuned, where
a training run lives, which methods are evaluated on a dataset and what each method name
means, which tables and figures the study writes.

Method names (the ``{method}`` of ``predictions/{method}/{dataset}`` and of ``metrics/``):

- ``raw``, ``provided-<name>``, ``bm3d``, ``bm3d-vst``: baselines;
- ``<model>``: the cell selected on validation for that model and dataset;
- ``<model>-zeroshot``: a fine-tuned model's published weights, not fine-tuned;
- ``<model>-seed<k>``: the selected cell trained again with seed ``k`` (``grid.final_seeds``).

Transfer (``evaluation.transfer``) is no method: one job per model and dataset applies the
model selected there to every other dataset's test set (:func:`transfer_targets`).

The rules (``rules/common.smk``), the planner (:mod:`fmdenoise.plan.jobs`), the tables and the
tests read these lists from here, so that what is planned, run and tabulated is one list.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from fmdenoise.train.search import config_budgets

BASELINE_KINDS = ("raw", "provided", "bm3d", "bm3d-vst")


@dataclasses.dataclass(frozen=True)
class ModelMethod:
    """What a model method name means: the model, and which of its weights it runs."""

    model: str
    variant: str  # selected | zeroshot | seed
    seed: int | None = None  # variant seed: the extra seed


#: a training run's folder under ``runs/`` (the ``{wildcards}`` of rules train and rung)
RUN_PATTERN = "{model}/{dataset}/{loss}/lr{lr}/{init}/{aug}/seed{seed}"
#: the tables of the validation side (rule table_validation)
VALIDATION_TABLES = ("hyperparameters", "scratch", "augmentation")


def finetuned_models(config: Mapping[str, Any]) -> list[str]:
    """Models with published weights: fine-tuned (the others, CARE, train from scratch)."""
    return [m for m, c in config["models"].items() if c["pretrained"]["source"] != "none"]


def main_init(config: Mapping[str, Any], model: str) -> str:
    """A model's initialisation in the main sweep: ``pretrained`` for the fine-tuned models,
    ``scratch`` for models without published weights (CARE)."""
    return "pretrained" if model in finetuned_models(config) else "scratch"


def run_path(
    model: str, dataset: str, loss: str, lr: float | str, init: str, aug: str, seed: int | str
) -> str:
    """A run's folder relative to ``runs/`` (``lr`` as a number, or already as in paths)."""
    lr_text = lr if isinstance(lr, str) else f"{lr:g}"
    return RUN_PATTERN.format(
        model=model, dataset=dataset, loss=loss, lr=lr_text, init=init, aug=aug, seed=seed
    )


def tables(config: Mapping[str, Any]) -> list[str]:
    """Every table the study writes (``tables/<name>.{csv,md,tex}``); ``answers.md`` reads
    them all."""
    grid = config["grid"]
    out = ["main", "hyperparameters", "cost"]
    out += ["scratch"] * bool(grid["scratch_study"])
    out += ["augmentation"] * bool(grid["augmentation_study"])
    out += ["search"] * (len(config_budgets(config)) > 1)  # a halving search with rungs
    return out + ["transfer"] * bool(transfer_sources(config))


def figures(config: Mapping[str, Any]) -> list[str]:
    """Every figure the study draws (``figures/<name>.png``)."""
    out = ["psnr_vs_cost"]
    out += ["learning_curves"] * bool(config["grid"]["scratch_study"])
    out += ["transfer"] * bool(transfer_sources(config))
    return out + [f"examples/{d}" for d in config["datasets"]]


def extra_seeds(config: Mapping[str, Any], dataset: str | None = None) -> list[int]:
    """The seeds each selected cell trains again with after selection
    (``grid.final_seeds`` - 1 of them, numbered after the sweep's ``grid.seeds``); given a
    ``dataset`` outside ``grid.seed_datasets``, none."""
    chosen = config["grid"].get("seed_datasets")
    if dataset is not None and chosen is not None and dataset not in chosen:
        return []
    first = max(config["grid"]["seeds"]) + 1
    return [first + i for i in range(int(config["grid"].get("final_seeds", 1)) - 1)]


def transfer_targets(config: Mapping[str, Any], dataset: str) -> list[str]:
    """The datasets whose test sets the models selected on ``dataset`` are applied to: every
    other dataset when ``evaluation.transfer`` is on, else none."""
    if not config["evaluation"].get("transfer", False):
        return []
    return [d for d in config["datasets"] if d != dataset]


def transfer_sources(config: Mapping[str, Any]) -> list[str]:
    """The datasets whose selected models are applied elsewhere (none with transfer off)."""
    return [d for d in config["datasets"] if transfer_targets(config, d)]


def parse_method(config: Mapping[str, Any], method: str) -> ModelMethod | None:
    """The model behind ``method``, or None for a baseline (or a name that is no method)."""
    models = config["models"]
    if method in models:
        return ModelMethod(method, "selected")
    if method.endswith("-zeroshot") and method.removesuffix("-zeroshot") in models:
        return ModelMethod(method.removesuffix("-zeroshot"), "zeroshot")
    seed = re.fullmatch(r"(.+)-seed(\d+)", method)
    if seed and seed[1] in models:
        return ModelMethod(seed[1], "seed", seed=int(seed[2]))
    return None


def method_kinds(config: Mapping[str, Any], dataset: str) -> dict[str, str]:
    """The methods compared on ``dataset`` in the main table and their kind (``raw``,
    ``provided``, ``bm3d``, ``bm3d-vst``, ``model``): baselines, zero-shot and selected."""
    out = {"raw": "raw"}
    out |= {
        f"provided-{p}": "provided" for p in config["datasets"][dataset]["test"].get("provided", {})
    }
    if config["evaluation"]["bm3d"]:
        out["bm3d"] = "bm3d"
    if config["evaluation"]["bm3d_vst"]:
        out["bm3d-vst"] = "bm3d-vst"
    out |= {f"{m}-zeroshot": "model" for m in finetuned_models(config)}
    return out | {m: "model" for m in config["models"]}


def seed_methods(config: Mapping[str, Any], dataset: str) -> list[str]:
    """The extra seeds' methods evaluated on ``dataset`` (``<model>-seed<k>``)."""
    return [f"{m}-seed{k}" for m in config["models"] for k in extra_seeds(config, dataset)]
