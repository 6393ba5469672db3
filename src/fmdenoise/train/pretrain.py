"""Pretraining small denoisers on natural images, the way the published checkpoints were made.

The demo study cannot download the published checkpoints, so it makes its own: small-width
versions of the same architectures, trained on the natural grayscale photographs that
scikit-image ships (random crops and flips, additive Gaussian noise with sigma drawn uniformly
from [0, sigma_max]/255, L1 loss, Adam). DRUNet gets the true sigma as its noise-level map, as
in KAIR. The held-out image ``camera`` is used only to report the denoising gain at sigma 25.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from skimage import data as skdata
from skimage.color import rgb2gray
from skimage.metrics import peak_signal_noise_ratio

from fmdenoise.models import build
from fmdenoise.models.wrapper import Denoiser
from fmdenoise.settings import PretrainSettings
from fmdenoise.train.provenance import code_version

log = logging.getLogger(__name__)

TRAIN_IMAGES = (
    "astronaut",
    "brick",
    "chelsea",
    "coffee",
    "coins",
    "grass",
    "gravel",
    "moon",
    "rocket",
    "page",
    "text",
    "hubble_deep_field",
)
HELD_OUT = "camera"


def natural_image(name: str) -> np.ndarray:
    """A scikit-image sample image as float32 grayscale in [0, 1]."""
    img = getattr(skdata, name)()
    if img.ndim == 3:
        img = rgb2gray(img[..., :3])
    img = img.astype(np.float32)
    return img / 255.0 if img.max() > 1.0 else img


def _batch(
    images: list[np.ndarray], size: int, n: int, sigma_max: float, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    clean = np.empty((n, 1, size, size), np.float32)
    for i in range(n):
        img = images[rng.integers(len(images))]
        y, x = rng.integers(0, img.shape[0] - size + 1), rng.integers(0, img.shape[1] - size + 1)
        crop = img[y : y + size, x : x + size]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        clean[i, 0] = np.rot90(crop, int(rng.integers(4)))
    sigma = rng.uniform(0, sigma_max / 255.0, n).astype(np.float32)
    noisy = clean + sigma[:, None, None, None] * rng.standard_normal(clean.shape).astype(np.float32)
    return torch.from_numpy(noisy), torch.from_numpy(clean), torch.from_numpy(sigma)


def held_out_gain(model: Denoiser, sigma255: float = 25.0, seed: int = 1) -> dict[str, float]:
    """PSNR of noisy and denoised held-out ``camera`` at ``sigma255``/255 (true sigma map)."""
    clean = natural_image(HELD_OUT)
    rng = np.random.default_rng(seed)
    noisy = clean + sigma255 / 255.0 * rng.standard_normal(clean.shape).astype(np.float32)
    model.eval()
    with torch.inference_mode():
        out = model(torch.from_numpy(noisy)[None, None], sigma=torch.tensor([sigma255 / 255.0]))
    den = out[0, 0].numpy()
    p_noisy = peak_signal_noise_ratio(clean, np.clip(noisy, 0, 1), data_range=1.0)
    p_den = peak_signal_noise_ratio(clean, np.clip(den, 0, 1), data_range=1.0)
    return {
        "sigma255": sigma255,
        "psnr_noisy": float(p_noisy),
        "psnr_denoised": float(p_den),
        "gain_db": float(p_den - p_noisy),
    }


def pretrain(
    arch: str, kwargs: Mapping[str, Any], recipe: PretrainSettings
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Train ``arch(**kwargs)`` on natural images; returns the raw network and a summary."""
    torch.manual_seed(int(recipe.seed))
    rng = np.random.default_rng(int(recipe.seed))
    images = [natural_image(n) for n in TRAIN_IMAGES]
    net = build(arch, **dict(kwargs))
    model = Denoiser(net, arch, kwargs)
    opt = torch.optim.Adam(model.parameters(), lr=float(recipe.lr))
    steps = int(recipe.steps)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(
        opt, T_max=steps, eta_min=float(recipe.lr) / 10
    )
    start, losses = time.perf_counter(), []
    with torch.enable_grad():
        model.train()
        for step in range(1, steps + 1):
            noisy, clean, sigma = _batch(
                images, int(recipe.patch_size), int(recipe.batch_size), float(recipe.sigma_max), rng
            )
            loss = F.l1_loss(model(noisy, sigma=sigma), clean)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
            if step % max(1, steps // 10) == 0 or step == steps:
                log.info(
                    "%s pretrain step %d/%d  L1 %.4f  %.1fs",
                    arch,
                    step,
                    steps,
                    float(np.mean(losses[-20:])),
                    time.perf_counter() - start,
                )
    summary = {
        "steps": steps,
        "final_l1": float(np.mean(losses[-20:])),
        "seconds": time.perf_counter() - start,
        "held_out": held_out_gain(model),
    }
    log.info("%s held-out %s", arch, summary["held_out"])
    return net, summary


def provenance(recipe: PretrainSettings, threads: int) -> dict[str, Any]:
    """What made a pretrained checkpoint: the recipe (``pretrain:`` section, seed included),
    the training images, the code version, torch and the thread count (CPU results are
    bitwise reproducible for the same code, torch and threads)."""
    return {
        "recipe": dataclasses.asdict(recipe),
        "images": list(TRAIN_IMAGES),
        "code_version": code_version(),
        "torch": str(torch.__version__),
        "threads": threads,
    }
