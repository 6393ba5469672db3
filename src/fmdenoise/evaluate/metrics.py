"""Image quality metrics: one definition for every method, in numpy and (for losses) torch.

Convention (CARE/CSBDeep, the study's default): the ground truth is normalised by its
0.1/99.9 percentiles; the prediction is mapped by the least-squares affine fit ``a*x + b`` to
that normalised ground truth (so methods are not penalised for an intensity scale or offset);
PSNR uses data range 1; SSIM uses a Gaussian window (sigma 1.5, 11x11) with K1=0.01, K2=0.03
as in scikit-image with ``gaussian_weights=True``. :data:`CONVENTION` is the string written
next to every number. :func:`ssim_torch` computes the same SSIM on tensors (for the loss).

MicroSSIM (Ashesh et al. 2024, the ``microssim`` package of its authors) is reported beside
SSIM: it is made for pairs whose images sit on different intensity scales, as a low-SNR input
or a denoiser's output and a high-SNR acquisition do. As its authors prescribe, its parameters
(background offsets, the normalising maximum and the range-invariant factor) are fitted once
on a method's whole test set, in the images' own units, and each image is then scored.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from fmdenoise.data.ingest import split_images
from fmdenoise.data.normalize import normalize_percentile
from fmdenoise.io import read_image

if TYPE_CHECKING:  # torch is imported where the loss needs it: metric jobs start without it
    import torch

CONVENTION = "gt-percentile(0.1,99.9)+affine-fit; psnr range 1; ssim gauss 11/1.5"
SSIM_SIGMA, SSIM_WIN, K1, K2 = 1.5, 11, 0.01, 0.03


def psnr(gt: np.ndarray, pred: np.ndarray, data_range: float = 1.0) -> float:
    return float(peak_signal_noise_ratio(gt, pred, data_range=data_range))


def ssim(gt: np.ndarray, pred: np.ndarray, data_range: float = 1.0) -> float:
    return float(
        structural_similarity(
            gt,
            pred,
            data_range=data_range,
            gaussian_weights=True,
            sigma=SSIM_SIGMA,
            use_sample_covariance=False,
        )
    )


def affine_fit(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``a*pred + b`` with (a, b) minimising the squared error to ``target``."""
    x = pred.astype(np.float64).ravel()
    y = target.astype(np.float64).ravel()
    xm, ym = x.mean(), y.mean()
    var = ((x - xm) ** 2).sum()
    a = ((x - xm) * (y - ym)).sum() / var if var > 0 else 0.0
    return (a * (pred - xm) + ym).astype(np.float32)


def evaluate(
    gt: np.ndarray, pred: np.ndarray, low: float = 0.1, high: float = 99.9
) -> dict[str, float]:
    """PSNR/SSIM of ``pred`` against ``gt`` under the study convention (and a raw variant).

    ``psnr``/``ssim``: normalised ground truth, affine-fitted prediction, range 1.
    ``psnr_raw``/``ssim_raw``: both in the ground truth's own units, range = its 0.1-99.9 span.
    """
    gt_n, (lo, hi) = normalize_percentile(gt, low, high)
    fitted = affine_fit(pred, gt_n)
    span = max(hi - lo, 1e-12)
    return {
        "psnr": psnr(gt_n, fitted),
        "ssim": ssim(gt_n, fitted),
        "psnr_raw": psnr(gt.astype(np.float32), pred.astype(np.float32), data_range=span),
        "ssim_raw": ssim(gt.astype(np.float32), pred.astype(np.float32), data_range=span),
    }


def _gaussian_window(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    import torch

    r = SSIM_WIN // 2
    x = torch.arange(-r, r + 1, device=device, dtype=dtype)
    g = torch.exp(-(x**2) / (2 * SSIM_SIGMA**2))
    g = g / g.sum()
    return g


def _blur(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    import torch.nn.functional as F

    r = g.numel() // 2
    x = F.pad(x, (r, r, r, r), mode="reflect")
    x = F.conv2d(x, g.view(1, 1, 1, -1))
    return F.conv2d(x, g.view(1, 1, -1, 1))


def ssim_torch_per_image(
    pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0
) -> torch.Tensor:
    """SSIM of each image of (B, 1, H, W) batches, equal to :func:`ssim` image by image (the
    mean of the SSIM map without its 5-pixel border, where the window would need padding).
    Differentiable; computes in the inputs' dtype."""
    g = _gaussian_window(pred.device, pred.dtype)
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    mu_x, mu_y = _blur(pred, g), _blur(target, g)
    sxx = _blur(pred * pred, g) - mu_x**2
    syy = _blur(target * target, g) - mu_y**2
    sxy = _blur(pred * target, g) - mu_x * mu_y
    s = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))
    r = SSIM_WIN // 2
    return s[..., r:-r, r:-r].mean(dim=(1, 2, 3))


def ssim_torch(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Mean SSIM of (B, 1, H, W) batches, equal to :func:`ssim` image by image (per-image
    means, then averaged over the batch). Differentiable."""
    return ssim_torch_per_image(pred, target, data_range).mean()


def fitted_psnr_ssim_torch(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B, 2): PSNR and SSIM of each image of (B, 1, H, W) batches under the study convention
    (the prediction affine-fitted to the target, data range 1), on the tensors' device: what
    :func:`affine_fit`, :func:`psnr` and :func:`ssim` give image by image (float64, the fitted
    image rounded to float32 as there)."""
    import torch

    x, y = pred.double().flatten(1), target.double().flatten(1)
    xm, ym = x.mean(1, keepdim=True), y.mean(1, keepdim=True)
    var = ((x - xm) ** 2).sum(1, keepdim=True)
    cov = ((x - xm) * (y - ym)).sum(1, keepdim=True)
    a = torch.where(var > 0, cov / var.clamp_min(1e-300), torch.zeros_like(var))
    fitted = (a * (x - xm) + ym).float().double()
    mse = ((y - fitted) ** 2).mean(1)
    psnr_b = 10 * torch.log10(1.0 / mse)
    ssim_b = ssim_torch_per_image(fitted.view_as(pred.double()), target.double())
    return torch.stack([psnr_b, ssim_b], dim=1)


def micro_ssim(gts: Sequence[np.ndarray], preds: Sequence[np.ndarray]) -> list[float]:
    """MicroSSIM of each (ground truth, prediction) pair, its parameters fitted on all the
    pairs together (a method's test set), in the images' own units."""
    from microssim import MicroSSIM  # imports torch (through torchmetrics): only when asked

    gts = [np.asarray(g, dtype=np.float32) for g in gts]
    preds = [np.asarray(p, dtype=np.float32) for p in preds]
    fitted = MicroSSIM().fit(gts, preds)
    return [float(fitted.score(g, p)) for g, p in zip(gts, preds, strict=True)]


def evaluate_dataset(
    data_dir: str | Path, pred_dir: str | Path, low: float = 0.1, high: float = 99.9
) -> pd.DataFrame:
    """Per-image metrics of every prediction in ``pred_dir`` against the test ground truth
    (MicroSSIM fitted on the whole test set)."""
    rows, gts, preds = [], [], []
    for name, _low_path, gt_path in split_images(data_dir, "test"):
        pred = read_image(Path(pred_dir) / f"{name}.tif")
        gt = read_image(gt_path)
        if pred.shape != gt.shape:
            raise ValueError(
                f"{pred_dir}/{name}.tif: shape {pred.shape} != ground truth {gt.shape}"
            )
        rows.append({"image": name, **evaluate(gt, pred, low, high), "convention": CONVENTION})
        gts.append(gt)
        preds.append(pred)
    table = pd.DataFrame(rows)
    if rows:
        table.insert(len(table.columns) - 1, "microssim", micro_ssim(gts, preds))
    return table
