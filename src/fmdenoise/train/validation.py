"""Validation of a model during training, under the study's metric convention.

Loss, PSNR and SSIM on the validation patches (the affine fit of the prediction to the ground
truth and data range 1, as the test metrics in :mod:`fmdenoise.evaluate.metrics`). Selection of
hyperparameters reads these numbers only, never the test split.

Scored on the model's device (:func:`~fmdenoise.evaluate.metrics.fitted_psnr_ssim_torch`, in
float64: the numbers scikit-image gives patch by patch, within 1e-6) at
:data:`BATCH_FACTOR` times the training batch (no gradients are kept), and read back once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from fmdenoise import device as dev
from fmdenoise.data.patches import load_patches
from fmdenoise.evaluate.metrics import fitted_psnr_ssim_torch

#: validation batches are this many training batches (inference keeps no activations)
BATCH_FACTOR = 4


def validation_metrics(
    model: torch.nn.Module, patch_dir: Path, loss_fn: Any, device: torch.device, batch_size: int
) -> dict[str, float]:
    """Loss, PSNR and SSIM (study convention: affine fit, range 1) on the validation patches.
    The loss is each batch's mean loss weighted by its size, as before."""
    low, gt = load_patches(patch_dir, "val")
    model.eval()
    batch = batch_size * BATCH_FACTOR
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    scores = []
    with torch.inference_mode():
        for s in range(0, len(low), batch):
            x = torch.from_numpy(np.array(low[s : s + batch])).to(device, non_blocking=True)
            y = torch.from_numpy(np.array(gt[s : s + batch])).to(device, non_blocking=True)
            x = x.contiguous(memory_format=dev.memory_format(device))
            with dev.autocast(device):
                pred = model(x).float()
            for i in range(0, len(x), batch_size):  # the loss per training-sized batch
                loss_sum += loss_fn(pred[i : i + batch_size], y[i : i + batch_size]).double() * (
                    len(pred[i : i + batch_size])
                )
            scores.append(fitted_psnr_ssim_torch(pred, y))
    model.train()
    mean = torch.cat(scores).mean(0).cpu()  # the one read back
    return {
        "val_loss": float(loss_sum.cpu()) / len(low),
        "val_psnr": float(mean[0]),
        "val_ssim": float(mean[1]),
    }
