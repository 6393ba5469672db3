"""Typed views of a validated study configuration: what the library reads instead of string keys.

:func:`fmdenoise.config.validate` checks a config against the JSON schema and fills in its
defaults; :meth:`StudySettings.from_config` then turns the sections the library computes with
(``training``, ``models``, ``grid``, ``resources``, ``planning``, ``evaluation``, ``split``,
``normalization``, ``patches``, ``pretrain``) into frozen dataclasses once, so that a misspelt
key is an attribute error a type checker catches rather than a ``KeyError`` at run time. The
schema stays the one description of every key (defaults, ranges, documentation); these classes
mirror its names. A field has a default here only where the schema leaves a key optional with
no default of its own, so that a validated config may lack it (``split.test_fraction``,
``noise_level.zero_shot_mode``, ``pretrained.download``, a model's ``tile``): the default says
what the missing key means, and ``as_dict`` leaves it out again where it was missing.
:class:`InferenceSettings` is no section: it is derived from the config
(:func:`fmdenoise.study.inference_settings`) and recorded with every trained model.

Values are kept exactly as validated (an ``int`` where the file says ``1``), and
:meth:`TrainingSettings.as_dict` / :meth:`ModelSettings.as_dict` give back the validated
mapping: a run's signature and ``run.json`` are computed from those dicts, so runs trained
before these classes existed still resume.

The sections the library only passes through or parses itself (``datasets``, whose layouts
:func:`fmdenoise.data.ingest.dataset_layout` reads, ``downloads``, ``synthetic_source``,
``site``) stay mappings, on :attr:`StudySettings.config`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal, Self

#: a model without its own ``tile`` takes ``evaluation.tile``
FROM_EVALUATION: Literal["evaluation"] = "evaluation"


class Section:
    """A config section as a frozen dataclass: :meth:`from_dict` reads its validated mapping
    (every field a key of it, optional keys with a default here), :meth:`as_dict` gives that
    mapping back (what a job receives as params, what a run's signature is computed from)."""

    @classmethod
    def from_dict(cls, section: Mapping[str, Any]) -> Self:
        fields = dataclasses.fields(cls)  # type: ignore[arg-type]
        missing = [f.name for f in fields if f.name not in section and _required(f)]
        if missing:
            raise KeyError(f"{cls.__name__}: no {missing[0]!r} (a config that skipped validation)")
        return cls(**{f.name: section[f.name] for f in fields if f.name in section})

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]


def _required(field: dataclasses.Field[Any]) -> bool:
    return field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING


@dataclasses.dataclass(frozen=True)
class TrainingSettings(Section):
    """``training``: the optimisation of every cell."""

    steps: int
    batch_size: int
    optimizer: str  # adam | adamw
    weight_decay: float
    schedule: str  # cosine | constant
    grad_clip: float | None
    val_every: int
    checkpoint_every: int
    patience: int | None
    ssim_l1_weight: float
    compile: bool


@dataclasses.dataclass(frozen=True)
class SplitSettings(Section):
    """``split``: how ingest divides the pairs (validation, and test of unsplit stacks)."""

    val_fraction: float
    seed: int
    test_fraction: float | None = None


@dataclasses.dataclass(frozen=True)
class NormalizationSettings(Section):
    """``normalization``: the per-image percentiles mapped to 0 and 1."""

    low_percentile: float
    high_percentile: float


@dataclasses.dataclass(frozen=True)
class InferenceSettings(Section):
    """How a trained model is applied to an image: what the study's test-set inference of it
    used (not a config section: :func:`fmdenoise.study.inference_settings` derives it from the
    config). Recorded in ``run.json``, ``model.pt`` and the selection file; ``fmdenoise
    denoise`` and ``fmdenoise export`` apply a model by it."""

    tile: int | None  # tile side in pixels; None: the whole image at once
    overlap: int  # tile overlap in pixels
    low_percentile: float  # the input's percentiles mapped to 0 and 1
    high_percentile: float
    noise_level: Mapping[str, Any] | None  # DRUNet's noise-level input (mode, sigma)


#: how a model with no record is applied (an older run, a published checkpoint): the defaults
#: of ``fmdenoise denoise`` before the record existed
DEFAULT_INFERENCE = InferenceSettings(512, 64, 0.1, 99.9, None)


@dataclasses.dataclass(frozen=True)
class PatchSettings(Section):
    """``patches``: the training and validation patches cut from each image."""

    size: int
    per_image: int
    foreground_threshold: float
    foreground_fraction: float
    seed: int


@dataclasses.dataclass(frozen=True)
class PretrainSettings(Section):
    """``pretrain``: the demo's pretraining recipe (Gaussian denoising of natural images)."""

    steps: int
    batch_size: int
    patch_size: int
    lr: float
    sigma_max: float
    seed: int


@dataclasses.dataclass(frozen=True)
class NoiseLevelSettings(Section):
    """``models.<name>.noise_level``: DRUNet's noise-level input."""

    mode: str  # fixed | estimate
    sigma: float
    zero_shot_mode: str | None = None


@dataclasses.dataclass(frozen=True)
class PretrainedSettings(Section):
    """``models.<name>.pretrained``: where a model's starting weights come from."""

    source: str  # download | pretrain | none
    format: str  # kair | restormer | kbnet | fmdenoise
    download: str | None = None  # the downloads key (source: download)


@dataclasses.dataclass(frozen=True)
class ModelSettings(Section):
    """``models.<name>``: one network of the study."""

    arch: str
    kwargs: Mapping[str, Any]
    pretrained: PretrainedSettings
    noise_level: NoiseLevelSettings
    #: test-set inference tile (None: whole image); ``FROM_EVALUATION``: ``evaluation.tile``
    tile: int | Literal["evaluation"] | None = FROM_EVALUATION

    @classmethod
    def from_dict(cls, section: Mapping[str, Any]) -> Self:
        return super().from_dict(
            {
                **section,
                "kwargs": dict(section.get("kwargs", {})),
                "pretrained": PretrainedSettings.from_dict(section["pretrained"]),
                "noise_level": NoiseLevelSettings.from_dict(section.get("noise_level", {})),
            }
        )

    @property
    def finetuned(self) -> bool:
        """Whether the model starts from weights (published or pretrained), i.e. is fine-tuned."""
        return self.pretrained.source != "none"

    def as_dict(self) -> dict[str, Any]:
        """The validated ``models.<name>`` mapping (for signatures and ``run.json``): the keys
        a validated config leaves out (``pretrained.download``, ``tile``) left out again."""
        out = super().as_dict()
        if self.pretrained.download is None:
            del out["pretrained"]["download"]
        if self.tile == FROM_EVALUATION:
            del out["tile"]
        return out


@dataclasses.dataclass(frozen=True)
class HalvingSettings(Section):
    """``grid.halving``: the successive-halving search of the main sweep."""

    eta: int
    min_steps: int
    stratify: str | None
    stratify_rungs: int | None
    budgets: list[int] | None


@dataclasses.dataclass(frozen=True)
class GridSettings(Section):
    """``grid``: the cells of the main sweep and the studies around it."""

    losses: list[str]
    learning_rates: list[float]
    seeds: list[int]
    final_seeds: int
    seed_datasets: list[str] | None
    scratch_study: bool
    keep_weights: str  # all | selected
    augmentation_study: bool
    study_datasets: list[str] | None
    sweep_datasets: list[str] | None
    search: str  # full | halving
    halving: HalvingSettings

    @classmethod
    def from_dict(cls, section: Mapping[str, Any]) -> Self:
        return super().from_dict(
            {**section, "halving": HalvingSettings.from_dict(section["halving"])}
        )


@dataclasses.dataclass(frozen=True)
class ResourceRequest(Section):
    """``resources.<rule>``: what one rule's jobs ask of the machine or the cluster."""

    cpus: int
    mem_mb: int
    runtime: int  # minutes
    gpu: int
    gpu_model: str
    slurm_partition: str
    slurm_extra: str
    retries: int | None
    time_limit: int | None  # minutes (the partition's MaxTime)
    signal_lead: int  # seconds


@dataclasses.dataclass(frozen=True)
class ResourceSettings:
    """``resources``: one :class:`ResourceRequest` per configured rule and the default."""

    default: ResourceRequest
    rules: Mapping[str, ResourceRequest]

    @classmethod
    def from_dict(cls, section: Mapping[str, Any]) -> ResourceSettings:
        return cls(
            ResourceRequest.from_dict(section["default"]),
            {k: ResourceRequest.from_dict(v) for k, v in section.items() if k != "default"},
        )

    def own(self, rule: str) -> ResourceRequest | None:
        """The entry of ``rule`` itself, None when the config does not list the rule."""
        return self.rules.get(rule)

    def of(self, rule: str) -> ResourceRequest:
        """The entry of ``rule`` (a rule the config does not list takes ``default``)."""
        return self.own(rule) or self.default


@dataclasses.dataclass(frozen=True)
class PlanningSettings(Section):
    """``planning``: how requests are derived from estimates."""

    margin: float
    download_mb_per_s: float
    concurrent_jobs: int
    calibration: str | None


@dataclasses.dataclass(frozen=True)
class EvaluationSettings(Section):
    """``evaluation``: the test-set side (baselines, tiling, transfer)."""

    bm3d: bool
    bm3d_vst: bool
    tile: int | None
    overlap: int
    seed: int
    transfer: bool
    crop: int


@dataclasses.dataclass(frozen=True)
class StudySettings:
    """A whole validated study configuration, typed where the library computes with it."""

    study: str
    results: str
    datasets: Mapping[str, Mapping[str, Any]]
    split: SplitSettings
    normalization: NormalizationSettings
    patches: PatchSettings
    pretrain: PretrainSettings
    models: Mapping[str, ModelSettings]
    grid: GridSettings
    training: TrainingSettings
    resources: ResourceSettings
    planning: PlanningSettings
    evaluation: EvaluationSettings
    #: the validated mapping itself, for the sections kept as mappings
    config: Mapping[str, Any] = dataclasses.field(repr=False, compare=False)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> StudySettings:
        """The typed view of ``config``, which :func:`fmdenoise.config.validate` has checked
        and completed (a missing key here is a config that skipped validation)."""
        return cls(
            study=config["study"],
            results=config["results"],
            datasets=config["datasets"],
            split=SplitSettings.from_dict(config["split"]),
            normalization=NormalizationSettings.from_dict(config["normalization"]),
            patches=PatchSettings.from_dict(config["patches"]),
            pretrain=PretrainSettings.from_dict(config["pretrain"]),
            models={name: ModelSettings.from_dict(m) for name, m in config["models"].items()},
            grid=GridSettings.from_dict(config["grid"]),
            training=TrainingSettings.from_dict(config["training"]),
            resources=ResourceSettings.from_dict(config["resources"]),
            planning=PlanningSettings.from_dict(config["planning"]),
            evaluation=EvaluationSettings.from_dict(config["evaluation"]),
            config=config,
        )

    @property
    def compile_cache(self) -> str:
        """Where torch.compile's kernels are cached for the study's jobs (``compile_cache``,
        default ``<results>/cache/torch``)."""
        return str(self.config.get("compile_cache") or f"{self.results}/cache/torch")

    @property
    def checkpoint_minutes(self) -> float:
        """Wall minutes between a training job's checkpoints (``checkpoint_minutes``)."""
        return float(self.config.get("checkpoint_minutes", 10))

    def tile(self, model: str) -> int | None:
        """A model's test-set inference tile: its own ``tile``, else ``evaluation.tile``."""
        own = self.models[model].tile
        return self.evaluation.tile if own == FROM_EVALUATION else own


__all__ = [
    "DEFAULT_INFERENCE",
    "FROM_EVALUATION",
    "EvaluationSettings",
    "GridSettings",
    "HalvingSettings",
    "InferenceSettings",
    "ModelSettings",
    "NoiseLevelSettings",
    "NormalizationSettings",
    "PatchSettings",
    "PlanningSettings",
    "PretrainSettings",
    "PretrainedSettings",
    "ResourceRequest",
    "ResourceSettings",
    "Section",
    "SplitSettings",
    "StudySettings",
    "TrainingSettings",
]
