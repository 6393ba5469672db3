"""The files a finished run leaves in its folder: ``model.pt``, ``curve.csv`` and ``run.json``.

``model.pt`` holds the best-on-validation weights in the project's checkpoint format (the last
weights when no validation after step 0 ran); ``curve.csv`` one row per validation; ``run.json``
the resolved configuration, code version, device, parameter count, steps, best step, wall time
and GPU-hours. Each file is written atomically.
"""

from __future__ import annotations

import copy
import dataclasses
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from fmdenoise.io import write_json, write_text
from fmdenoise.models import count_parameters
from fmdenoise.models.checkpoints import save_model
from fmdenoise.models.wrapper import Denoiser
from fmdenoise.settings import InferenceSettings, ModelSettings, TrainingSettings
from fmdenoise.train.provenance import code_version
from fmdenoise.train.setup import Cell
from fmdenoise.train.state import RunState

CURVE_COLUMNS = ["step", "seconds", "train_loss", "val_loss", "val_psnr", "val_ssim", "lr"]


def best_network(wrapper: Denoiser, state: RunState) -> torch.nn.Module:
    """A CPU copy of the wrapped network carrying the best weights seen on validation."""
    net = copy.deepcopy(wrapper.net).cpu()
    if state.best_state is not None:
        net.load_state_dict(
            {k.removeprefix("net."): v for k, v in state.best_state.items() if k.startswith("net.")}
        )
    return net


def write_run_outputs(
    out_dir: Path,
    *,
    cell: Cell,
    wrapper: Denoiser,
    state: RunState,
    model: ModelSettings,
    training: TrainingSettings,
    signature: str,
    device: torch.device,
    training_noise: Mapping[str, Any] | None = None,
    inference: InferenceSettings | None = None,
) -> dict[str, Any]:
    """Write model.pt, curve.csv and run.json; return run.json's content.

    ``model`` and ``training``: the run's configuration (run.json's ``config``);
    ``training_noise`` the noise range of its training images (:mod:`fmdenoise.data.noise`),
    kept in both files so that ``fmdenoise denoise`` can check an input against it;
    ``inference``: how the study applies the model (tile, overlap, percentiles, noise level),
    kept in both files so that ``fmdenoise denoise`` and ``export`` apply it alike.
    """
    how = inference.as_dict() if inference is not None else None
    save_model(
        out_dir / "model.pt",
        best_network(wrapper, state),
        model.arch,
        dict(model.kwargs),
        cell=dataclasses.asdict(cell),
        best_step=state.best_step,
        best=state.best,
        training_noise=training_noise,
        inference=how,
    )
    curve = pd.DataFrame(state.curve, columns=CURVE_COLUMNS)
    write_text(out_dir / "curve.csv", curve.to_csv(index=False))
    gpus = 1 if device.type == "cuda" else 0
    run = {
        "cell": dataclasses.asdict(cell),
        "config": {"model": model.as_dict(), "training": training.as_dict()},
        "signature": signature,
        "code_version": code_version(),
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(device) if gpus else (platform.processor() or "cpu"),
        "device_type": device.type,
        "threads": torch.get_num_threads(),
        "parameters": count_parameters(wrapper.net),
        "steps_done": state.step,
        "best_step": state.best_step,
        "best": state.best,
        "wall_seconds": round(state.elapsed, 3),
        "gpu_hours": round(state.elapsed / 3600 * gpus, 6),
        "resumed_from": state.resumed_from,
        "training_noise": training_noise,
        "inference": how,
    }
    write_json(out_dir / "run.json", run)
    return run
