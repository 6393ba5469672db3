"""Training losses by name: ``mae``, ``mse``, ``ssim`` (1 - SSIM, the metric's Gaussian SSIM)
and ``ssim_l1`` (``w * (1 - SSIM) + (1 - w) * L1``, w from ``training.ssim_l1_weight``; the mix
of Zhao et al. 2017)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from fmdenoise.evaluate.metrics import ssim_torch

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
NAMES = ("mae", "mse", "ssim", "ssim_l1")


def get_loss(name: str, ssim_l1_weight: float = 0.84) -> Loss:
    """The loss function ``name(pred, target) -> scalar``."""
    if name == "mae":
        return F.l1_loss
    if name == "mse":
        return F.mse_loss
    if name == "ssim":
        return lambda p, t: 1 - ssim_torch(p.float(), t.float())
    if name == "ssim_l1":
        w = float(ssim_l1_weight)
        return lambda p, t: w * (1 - ssim_torch(p.float(), t.float())) + (1 - w) * F.l1_loss(p, t)
    raise ValueError(f"unknown loss {name!r} (known: {', '.join(NAMES)})")
