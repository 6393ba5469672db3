"""One grid cell and what it trains: the cell's identity, its network and its optimiser.

A :class:`Cell` is one (model, dataset, loss, lr, init, aug, seed) point of the study's grid.
:func:`make_model` builds the wrapped network from the pretrained checkpoint or from scratch;
:func:`make_optimizer` the optimiser and a learning-rate schedule defined over the full
``training.steps`` (so that a run stopped early and continued follows the same schedule).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from fmdenoise.errors import FmdenoiseError
from fmdenoise.models import build
from fmdenoise.models.checkpoints import load_model
from fmdenoise.models.wrapper import Denoiser
from fmdenoise.settings import ModelSettings, TrainingSettings


@dataclasses.dataclass(frozen=True)
class Cell:
    """One grid cell."""

    model: str
    dataset: str
    loss: str
    lr: float
    init: str  # pretrained | scratch
    aug: str  # none | rot
    seed: int


def make_model(cell: Cell, model: ModelSettings, pretrained: Path | None) -> Denoiser:
    """The wrapped network, initialised from ``pretrained`` or by the architecture's default."""
    torch.manual_seed(cell.seed)
    arch, kwargs = model.arch, dict(model.kwargs)
    if cell.init == "pretrained":
        if pretrained is None:
            raise FmdenoiseError(f"{cell}: init 'pretrained' needs pretrained/{cell.model}.pt")
        net, meta = load_model(pretrained, arch)
        if meta["kwargs"] != kwargs:
            raise FmdenoiseError(
                f"{pretrained}: built with {meta['kwargs']}, config says {kwargs} for {cell.model}"
            )
    else:
        net = build(arch, **kwargs)
    return Denoiser(net, arch, kwargs, model.noise_level.as_dict())


def make_optimizer(
    model: torch.nn.Module, cell: Cell, training: TrainingSettings
) -> tuple[Any, Any]:
    """Adam/AdamW at the cell's learning rate and the configured schedule over
    ``training.steps``; on CUDA the fused implementation (one kernel for every parameter's
    update instead of several per parameter; on CPU the default, whose numbers the tests pin)."""
    cls = torch.optim.AdamW if training.optimizer == "adamw" else torch.optim.Adam
    params = list(model.parameters())
    fused = bool(params) and all(p.device.type == "cuda" for p in params)
    opt = cls(
        params,
        lr=cell.lr,
        weight_decay=float(training.weight_decay),
        fused=True if fused else None,  # None: torch's default for the device
    )
    sched: Any
    if training.schedule == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(
            opt, T_max=int(training.steps), eta_min=cell.lr * 0.01
        )
    else:
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    return opt, sched
