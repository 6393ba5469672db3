"""How big a configured network is: its published (full) size, parameters and forward FLOPs.

Counted on the meta device (no memory, no arithmetic, a fraction of a second each), so the
planner can price a model of any size from the calibration table's full-size rows
(:class:`fmdenoise.costs.estimates.CostModel` scales them by FLOPs) and
``fmdenoise calibrate`` knows what it measures.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from fmdenoise.models import GRAY_DEFAULTS, build
from fmdenoise.models.wrapper import Denoiser

#: the study's four architectures at their published (full) size
FULL_SIZE: dict[str, dict[str, Any]] = {**GRAY_DEFAULTS, "care_unet": {}}


def gflop_forward(arch: str, kwargs: Mapping[str, Any] | None = None, size: int = 128) -> float:
    """Forward GFLOP of ``arch`` (full size unless ``kwargs``) on one ``size`` x ``size``
    image."""
    kwargs = dict(FULL_SIZE[arch] if kwargs is None else kwargs)
    with torch.device("meta"):
        model = Denoiser(build(arch, **kwargs), arch, kwargs, None).eval()
        x = torch.empty(1, 1, size, size)
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(x)
    return counter.get_total_flops() / 1e9


def parameter_count(arch: str, kwargs: Mapping[str, Any] | None = None) -> int:
    """Parameters of ``arch`` (full size unless ``kwargs``)."""
    kwargs = dict(FULL_SIZE[arch] if kwargs is None else kwargs)
    with torch.device("meta"):
        return sum(p.numel() for p in build(arch, **kwargs).parameters())


__all__ = ["FULL_SIZE", "gflop_forward", "parameter_count"]
