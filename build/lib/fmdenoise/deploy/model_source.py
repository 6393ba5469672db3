"""The MODEL a user names, resolved to a checkpoint and loaded as a :class:`Denoiser`.

A MODEL is a run folder of the study (its ``run.json`` noise-level setting is used), a selection
file (``selected/<model>/<dataset>.json``: the run it selected), a project checkpoint, or a
published checkpoint with the architecture it belongs to (its published grayscale
configuration). Used by ``fmdenoise denoise`` and ``fmdenoise export``.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from fmdenoise.errors import FmdenoiseError
from fmdenoise.models import GRAY_DEFAULTS
from fmdenoise.models.checkpoints import load_model
from fmdenoise.models.wrapper import Denoiser

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
    if path.is_file() and path.suffix == ".json":
        try:
            run = json.loads(path.read_text())["selected"]["run"]
        except (ValueError, KeyError, TypeError) as exc:
            raise FmdenoiseError(f"{path}: not a selection file ({exc})") from exc
        path = _find_run(run, path)
    if path.is_dir():
        if not (path / "model.pt").is_file():
            raise FmdenoiseError(f"{path}: a run folder must hold model.pt")
        noise = None
        if (path / "run.json").is_file():
            run_info = json.loads((path / "run.json").read_text())
            noise = run_info.get("config", {}).get("model", {}).get("noise_level")
        return ModelSource(path / "model.pt", noise_level=noise, run=path)
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
    """The :class:`Denoiser` for ``source`` (on CPU, eval mode) and its metadata."""
    kwargs = GRAY_DEFAULTS[source.arch] if source.arch else None
    net, meta = load_model(source.checkpoint, source.arch, kwargs, fmt=source.fmt)
    model = Denoiser(net, meta["arch"], meta["kwargs"], source.noise_level).eval()
    return model, meta
