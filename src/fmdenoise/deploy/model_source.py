"""The MODEL a user names, resolved to a checkpoint and loaded as a :class:`Denoiser`.

A MODEL is a run folder of the study (its ``run.json`` noise-level setting is used), a selection
file (``selected/<model>/<dataset>.json``: the run it selected), a project checkpoint, or a
published checkpoint with the architecture it belongs to (its published grayscale
configuration). Used by ``fmdenoise denoise`` and ``fmdenoise export``.

How the model is applied (:class:`~fmdenoise.settings.InferenceSettings`: tile or whole image,
overlap, normalisation percentiles, noise-level input) is the record the study kept with it:
the selection file's (what the study's test-set inference used), else the run's ``run.json``,
else ``model.pt``'s (:func:`how_to_apply`). A model with no record (a run trained before the
record existed, a published checkpoint) is applied with :data:`~fmdenoise.settings.
DEFAULT_INFERENCE`, with a warning.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

from fmdenoise.errors import FmdenoiseError
from fmdenoise.models import GRAY_DEFAULTS
from fmdenoise.models.checkpoints import load_model
from fmdenoise.models.wrapper import Denoiser
from fmdenoise.settings import DEFAULT_INFERENCE, InferenceSettings

log = logging.getLogger(__name__)

#: Published checkpoint container of each architecture.
PUBLISHED_FORMAT = {"drunet": "kair", "restormer": "restormer", "kbnet": "kbnet"}


@dataclasses.dataclass
class ModelSource:
    """Where a model came from and how to run it."""

    checkpoint: Path
    arch: str | None = None  # for published checkpoints
    fmt: str = "fmdenoise"
    noise_level: dict[str, Any] | None = None
    run: Path | None = None
    #: how the study applied the model, and where that record was read (None: not yet read)
    inference: InferenceSettings | None = None
    inference_from: str | None = None

    def adopt(self, record: InferenceSettings | None, where: Path) -> None:
        """Take ``record`` (read from ``where``) unless one was taken already: the first record
        found decides how the model is applied, its noise-level input included."""
        if self.inference is not None or record is None:
            return
        self.inference, self.inference_from = record, str(where)
        if record.noise_level is not None:
            self.noise_level = dict(record.noise_level)


def _record(data: dict[str, Any], where: Path) -> InferenceSettings | None:
    """The inference record in a selection file, run.json or model.pt's metadata, if any."""
    how = data.get("inference")
    if how is None:
        return None
    try:
        return InferenceSettings.from_dict(how)
    except (KeyError, TypeError) as exc:
        raise FmdenoiseError(f"{where}: unreadable inference record ({exc})") from exc


def _find_run(run: str, selection: Path) -> Path:
    """A run path as written in a selection file: relative to the workflow's folder, which is
    the current folder or an ancestor of the selection file."""
    for base in (Path.cwd(), *selection.resolve().parents):
        if (base / run / "model.pt").is_file():
            return base / run
    raise FmdenoiseError(f"{selection}: its selected run {run} (model.pt) was not found")


def resolve_model(spec: str | Path, arch: str | None = None) -> ModelSource:
    """Interpret the MODEL argument (see the module docstring)."""
    path = Path(spec)
    records: list[tuple[InferenceSettings | None, Path]] = []  # in the order they count
    if path.is_file() and path.suffix == ".json":
        try:
            selection = json.loads(path.read_text())
            run = selection["selected"]["run"]
        except (ValueError, KeyError, TypeError) as exc:
            raise FmdenoiseError(f"{path}: not a selection file ({exc})") from exc
        records.append((_record(selection, path), path))
        path = _find_run(run, path)
    if path.is_dir():
        if not (path / "model.pt").is_file():
            raise FmdenoiseError(f"{path}: a run folder must hold model.pt")
        source = ModelSource(path / "model.pt", run=path)
        if (path / "run.json").is_file():
            run_info = json.loads((path / "run.json").read_text())
            source.noise_level = run_info.get("config", {}).get("model", {}).get("noise_level")
            records.append((_record(run_info, path / "run.json"), path / "run.json"))
        for record, where in records:
            source.adopt(record, where)
        return source
    if path.is_file():
        if arch is None:
            return ModelSource(path)
        if arch not in PUBLISHED_FORMAT:
            raise FmdenoiseError(f"--arch {arch!r}: one of {', '.join(PUBLISHED_FORMAT)}")
        return ModelSource(path, arch=arch, fmt=PUBLISHED_FORMAT[arch])
    raise FmdenoiseError(
        f"MODEL {spec}: not found (give a run folder, a selected/<model>/<dataset>.json file, "
        "or a checkpoint file)"
    )


def load_denoiser(source: ModelSource) -> tuple[Denoiser, dict[str, Any]]:
    """The :class:`Denoiser` for ``source`` (on CPU, eval mode) and its metadata; ``source``
    takes model.pt's inference record when the selection and run.json had none."""
    kwargs = GRAY_DEFAULTS[source.arch] if source.arch else None
    net, meta = load_model(source.checkpoint, source.arch, kwargs, fmt=source.fmt)
    source.adopt(_record(meta, source.checkpoint), source.checkpoint)
    model = Denoiser(net, meta["arch"], meta["kwargs"], source.noise_level).eval()
    return model, meta


def how_to_apply(source: ModelSource, overrides: dict[str, Any] | None = None) -> InferenceSettings:
    """How to apply the model of ``source`` (after :func:`load_denoiser`): its record, or
    :data:`~fmdenoise.settings.DEFAULT_INFERENCE` with a warning when it has none; then the
    user's ``overrides`` (fields of :class:`~fmdenoise.settings.InferenceSettings`), each
    logged when it differs from how the model was evaluated."""
    record = source.inference
    if record is None:
        log.warning(
            "%s: no record of how the study applied this model (a run from before the record "
            "existed, or a published checkpoint): tile %s, overlap %s, percentiles %s/%s",
            source.checkpoint, DEFAULT_INFERENCE.tile, DEFAULT_INFERENCE.overlap,
            DEFAULT_INFERENCE.low_percentile, DEFAULT_INFERENCE.high_percentile,
        )  # fmt: skip
        record = DEFAULT_INFERENCE
    else:
        log.info("applied as evaluated (%s): %s", source.inference_from, record.as_dict())
    changed = {k: v for k, v in (overrides or {}).items() if getattr(record, k) != v}
    for key, value in changed.items():
        if source.inference is not None:
            log.warning(
                "%s=%s differs from how the study evaluated this model (%s=%s, %s)",
                key, value, key, getattr(record, key), source.inference_from,
            )  # fmt: skip
    return dataclasses.replace(record, **changed)
