"""Whole-image inference: normalise, denoise with a :class:`Denoiser`, undo normalisation.

Runs under ``torch.inference_mode``, in bf16 autocast with channels_last on CUDA, float32 on CPU.
"""

from __future__ import annotations

import numpy as np
import torch

from fmdenoise import device as dev
from fmdenoise.models.wrapper import Denoiser
from fmdenoise.normalize import denormalize, normalize_percentile


def denoise_array(
    model: Denoiser,
    image: np.ndarray,
    *,
    low: float = 0.1,
    high: float = 99.9,
    device: torch.device | None = None,
) -> np.ndarray:
    """Denoise one 2D image in its own intensity scale (float32, same shape)."""
    device = device or next(model.parameters()).device
    x, (lo, hi) = normalize_percentile(image, low, high)
    t = torch.from_numpy(x)[None, None].to(device)
    t = t.contiguous(memory_format=dev.memory_format(device))
    with torch.inference_mode(), dev.autocast(device):
        y = model(t).float()
    return denormalize(y[0, 0].cpu().numpy(), lo, hi)
