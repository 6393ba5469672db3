"""The study's structure, asked of the typed config (:class:`~fmdenoise.settings.StudySettings`)
in one place: which models are fine-tuned, where a training run lives, which methods are
evaluated on a dataset and what each method name means, which tables and figures the study
writes, which datasets the side studies and the transfer cover.

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
from typing import Any

from fmdenoise.errors import ConfigError
from fmdenoise.halving import config_budgets
from fmdenoise.settings import InferenceSettings, StudySettings


@dataclasses.dataclass(frozen=True)
class MethodKind:
    """One kind of method: what its ``predict`` job reads, where it runs, what prices it."""

    name: str
    reads: str  # what the predict job reads besides the test set
    runs_on: str  # "gpu": a network (the predict rule's GPUs); "cpus": one image per CPU; "io"
    calibration: str | None  # its inference row in the calibration table (None: the model's
    # architecture for a network, no row for I/O)

    @property
    def neural(self) -> bool:
        """A network: runs on the predict rule's GPUs, tiled as its model is evaluated."""
        return self.runs_on == "gpu"

    @property
    def classical(self) -> bool:
        """BM3D: whole images, one per CPU of the job in a process pool."""
        return self.runs_on == "cpus"


#: every kind of method, by name (the ``kind`` of a predict job's method and of
#: :func:`method_kinds`); baselines first
METHOD_KINDS: dict[str, MethodKind] = {
    k.name: k
    for k in (
        MethodKind("raw", "nothing (the noisy input is the prediction)", "io", None),
        MethodKind("provided", "the authors' outputs (test/provided/<name>)", "io", None),
        MethodKind("bm3d", "nothing", "cpus", "bm3d"),
        MethodKind("bm3d-vst", "nothing", "cpus", "bm3d-vst"),
        MethodKind("finetuned", "the selected cell's model.pt", "gpu", None),
        MethodKind("care", "the selected cell's model.pt (trained from scratch)", "gpu", None),
        MethodKind("zeroshot", "the published weights (pretrained/<model>.pt)", "gpu", None),
        MethodKind("seed", "an extra seed's model.pt of the selected cell", "gpu", None),
    )
}
BASELINE_KINDS = tuple(k for k, kind in METHOD_KINDS.items() if not kind.neural)


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


def finetuned_models(s: StudySettings) -> list[str]:
    """Models with published weights: fine-tuned (the others, CARE, train from scratch)."""
    return [name for name, model in s.models.items() if model.finetuned]


def main_init(s: StudySettings, model: str) -> str:
    """A model's initialisation in the main sweep: ``pretrained`` for the fine-tuned models,
    ``scratch`` for models without published weights (CARE)."""
    return "pretrained" if s.models[model].finetuned else "scratch"


def run_path(
    model: str, dataset: str, loss: str, lr: float | str, init: str, aug: str, seed: int | str
) -> str:
    """A run's folder relative to ``runs/`` (``lr`` as a number, or already as in paths)."""
    lr_text = lr if isinstance(lr, str) else f"{lr:g}"
    return RUN_PATTERN.format(
        model=model, dataset=dataset, loss=loss, lr=lr_text, init=init, aug=aug, seed=seed
    )


def study_datasets(s: StudySettings) -> list[str]:
    """The datasets the scratch and augmentation studies run on (``grid.study_datasets``)."""
    chosen = s.grid.study_datasets
    return [d for d in s.datasets if chosen is None or d in chosen]


def transfer_source(s: StudySettings, dataset: str) -> str | None:
    """The dataset whose selected (loss, lr) ``dataset`` trains at, or None when the main
    sweep runs on ``dataset`` itself (``grid.sweep_datasets``: null = every dataset; the
    others take the cell selected on the first dataset listed there)."""
    swept = s.grid.sweep_datasets
    if swept is None or dataset in swept:
        return None
    return swept[0]


def tables(s: StudySettings) -> list[str]:
    """Every table the study writes (``tables/<name>.{csv,md,tex}``); ``answers.md`` reads
    them all."""
    out = ["main", "hyperparameters", "cost"]
    out += ["scratch"] * s.grid.scratch_study
    out += ["augmentation"] * s.grid.augmentation_study
    out += ["search"] * (len(config_budgets(s)) > 1)  # a halving search with rungs
    return out + ["transfer"] * bool(transfer_sources(s))


def figures(s: StudySettings) -> list[str]:
    """Every figure the study draws (``figures/<name>.png``)."""
    out = ["psnr_vs_cost"]
    out += ["learning_curves"] * s.grid.scratch_study
    out += ["transfer"] * bool(transfer_sources(s))
    return out + [f"examples/{d}" for d in s.datasets]


def extra_seeds(s: StudySettings, dataset: str | None = None) -> list[int]:
    """The seeds each selected cell trains again with after selection
    (``grid.final_seeds`` - 1 of them, numbered after the sweep's ``grid.seeds``); given a
    ``dataset`` outside ``grid.seed_datasets``, none."""
    chosen = s.grid.seed_datasets
    if dataset is not None and chosen is not None and dataset not in chosen:
        return []
    first = max(s.grid.seeds) + 1
    return [first + i for i in range(s.grid.final_seeds - 1)]


def transfer_targets(s: StudySettings, dataset: str) -> list[str]:
    """The datasets whose test sets the models selected on ``dataset`` are applied to: every
    other dataset when ``evaluation.transfer`` is on, else none."""
    if not s.evaluation.transfer:
        return []
    return [d for d in s.datasets if d != dataset]


def transfer_sources(s: StudySettings) -> list[str]:
    """The datasets whose selected models are applied elsewhere (none with transfer off)."""
    return [d for d in s.datasets if transfer_targets(s, d)]


def parse_method(s: StudySettings, method: str) -> ModelMethod | None:
    """The model behind ``method``, or None for a baseline (or a name that is no method)."""
    models = s.models
    if method in models:
        return ModelMethod(method, "selected")
    if method.endswith("-zeroshot") and method.removesuffix("-zeroshot") in models:
        return ModelMethod(method.removesuffix("-zeroshot"), "zeroshot")
    seed = re.fullmatch(r"(.+)-seed(\d+)", method)
    if seed and seed[1] in models:
        return ModelMethod(seed[1], "seed", seed=int(seed[2]))
    return None


def inference_tile(s: StudySettings, method: str) -> int | None:
    """Tile side of a method's test-set inference: its model's own ``tile`` (null = whole
    image) or ``evaluation.tile`` (also for methods that are not models)."""
    parsed = parse_method(s, method)
    return s.tile(parsed.model) if parsed else s.evaluation.tile


def method_noise_level(s: StudySettings, method: str) -> dict[str, Any]:
    """DRUNet's noise-level settings for a model method's test-set inference: the model's
    ``noise_level``, with ``zero_shot_mode`` as the mode of its ``-zeroshot`` method when set."""
    parsed = parse_method(s, method)
    if parsed is None:
        raise ConfigError(f"method {method!r}: not a model of this config")
    noise = s.models[parsed.model].noise_level.as_dict()
    if parsed.variant == "zeroshot" and noise.get("zero_shot_mode"):
        noise["mode"] = noise["zero_shot_mode"]
    return noise


def inference_settings(s: StudySettings, method: str) -> InferenceSettings:
    """How the study applies a model method to a test image (tile or whole image, overlap,
    normalisation percentiles, the noise-level input): what the predict job of ``method`` uses,
    recorded with the run and the selection so that ``fmdenoise denoise`` applies it alike."""
    n = s.normalization
    return InferenceSettings(
        tile=inference_tile(s, method),
        overlap=int(s.evaluation.overlap),
        low_percentile=float(n.low_percentile),
        high_percentile=float(n.high_percentile),
        noise_level=method_noise_level(s, method),
    )


def method_kind(s: StudySettings, method: str) -> MethodKind:
    """The kind of ``method`` (:data:`METHOD_KINDS`); an error for a name that is no method."""
    if method in ("raw", "bm3d", "bm3d-vst"):
        return METHOD_KINDS[method]
    if method.startswith("provided-"):
        return METHOD_KINDS["provided"]
    parsed = parse_method(s, method)
    if parsed is None:
        raise ConfigError(f"method {method!r}: neither a baseline nor a model of this config")
    if parsed.variant == "selected":
        return METHOD_KINDS["finetuned" if s.models[parsed.model].finetuned else "care"]
    return METHOD_KINDS[parsed.variant]


def method_kinds(s: StudySettings, dataset: str) -> dict[str, MethodKind]:
    """The methods compared on ``dataset`` in the main table, with their kind: baselines
    (raw, the provided outputs, BM3D and BM3D-VST where on), zero-shot and selected models."""
    names = ["raw", *(f"provided-{p}" for p in s.datasets[dataset]["test"].get("provided", {}))]
    names += ["bm3d"] * s.evaluation.bm3d + ["bm3d-vst"] * s.evaluation.bm3d_vst
    names += [f"{m}-zeroshot" for m in finetuned_models(s)] + list(s.models)
    return {m: method_kind(s, m) for m in names}


def seed_methods(s: StudySettings, dataset: str) -> list[str]:
    """The extra seeds' methods evaluated on ``dataset`` (``<model>-seed<k>``)."""
    return [f"{m}-seed{k}" for m in s.models for k in extra_seeds(s, dataset)]
