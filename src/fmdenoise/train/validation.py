"""Validation of a model during training, under the study's metric convention.

Loss, PSNR and SSIM on the validation patches (the affine fit of the prediction to the ground
truth and data range 1, as the test metrics in :mod:`fmdenoise.evaluate.metrics`). Selection of
hyperparameters reads these numbers only, never the test split.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from fmdenoise import device as dev
from fmdenoise.data.patches import load_patches
from fmdenoise.evaluate.metrics import affine_fit, psnr, ssim


def validation_metrics(
    model: torch.nn.Module, patch_dir: Path, loss_fn: Any, device: torch.device, batch_size: int
) -> dict[str, float]:
    """Loss, PSNR and SSIM (study convention: affine fit, range 1) on the validation patches."""
    low, gt = load_patches(patch_dir, "val")
    model.eval()
    losses, psnrs, ssims = [], [], []
    with torch.inference_mode(), dev.autocast(device):
        for s in range(0, len(low), batch_size):
            x = torch.from_numpy(np.array(low[s : s + batch_size])).to(device)
            y = torch.from_numpy(np.array(gt[s : s + batch_size])).to(device)
            x = x.contiguous(memory_format=dev.memory_format(device))
            pred = model(x).float()
            losses.append(float(loss_fn(pred, y)) * len(x))
            for p, t in zip(pred.cpu().numpy()[:, 0], y.cpu().numpy()[:, 0], strict=True):
                fitted = affine_fit(p, t)
                psnrs.append(psnr(t, fitted))
                ssims.append(ssim(t, fitted))
    model.train()
    return {
        "val_loss": sum(losses) / len(low),
        "val_psnr": float(np.mean(psnrs)),
        "val_ssim": float(np.mean(ssims)),
    }
