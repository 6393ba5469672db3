"""Inference on whole images: normalise, denoise (whole or in overlapping tiles), undo.

Large images are processed in tiles of ``tile`` pixels overlapping by ``overlap``; each tile's
output is weighted by a window that ramps smoothly (raised cosine) from 0 to 1 across the
overlap and stays 1 inside and at the image border, and the weighted outputs are averaged. Only
one tile is on the device at a time, so a 2048x2048 image needs the memory of one tile plus
three image-sized float32 buffers. For convolutional models the result is close to whole-image
inference (the difference is bounded in the tests and measured by benchmarks/inference.py);
Restormer's channel attention is global, so tiling changes its statistics to per-tile ones:
use a large tile (or none) where memory allows.

Runs under ``torch.inference_mode``, in bf16 autocast on CUDA, channels_last, float32 on CPU.
"""

from __future__ import annotations

import numpy as np
import torch

from fmdenoise import device as dev
from fmdenoise.data.normalize import denormalize, normalize_percentile
from fmdenoise.evaluate.tiling import tile_starts
from fmdenoise.models.wrapper import Denoiser


def ramp(length: int, overlap: int, at_start: bool, at_end: bool) -> np.ndarray:
    """1D blending weights of a tile: raised-cosine ramps over ``overlap`` pixels on the sides
    that touch another tile, 1 elsewhere."""
    w = np.ones(length, np.float32)
    n = min(overlap, length // 2)
    if n > 0:
        r = (0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 0.5) / n)).astype(np.float32)
        if not at_start:
            w[:n] = r
        if not at_end:
            w[-n:] = r[::-1]
    return w


def _run(
    model: Denoiser, x: np.ndarray, device: torch.device, sigma: torch.Tensor | None = None
) -> np.ndarray:
    t = torch.from_numpy(np.ascontiguousarray(x))[None, None].to(device)
    t = t.contiguous(memory_format=dev.memory_format(device))
    with torch.inference_mode(), dev.autocast(device):
        y = model(t, sigma=sigma).float()
    return y[0, 0].cpu().numpy()


def denoise_normalized(
    model: Denoiser,
    x: np.ndarray,
    *,
    tile: int | None = None,
    overlap: int = 64,
    device: torch.device | None = None,
) -> np.ndarray:
    """Denoise a normalised 2D image, whole (``tile=None``) or in blended tiles."""
    device = device or next(model.parameters()).device
    model.eval()
    h0, w0 = x.shape
    if tile is None or (tile >= h0 and tile >= w0):
        return _run(model, x, device)
    # Pad once, as whole-image inference does, so that tiles see the same borders; tiles are
    # multiples of the architecture's spatial multiple and need no padding of their own.
    m = model.multiple
    tile = -(-tile // m) * m
    ph, pw = (-h0) % m, (-w0) % m
    x = np.pad(x, ((0, ph), (0, pw)), mode="reflect" if ph < h0 and pw < w0 else "edge")
    h, w = x.shape
    # DRUNet's noise level is a property of the image: estimate it once, not per tile.
    sigma = model.sigma(torch.from_numpy(x)[None, None]).to(device) if model.noise_map else None
    ys, xs = tile_starts(h, tile, overlap), tile_starts(w, tile, overlap)
    out = np.zeros((h, w), np.float32)
    weight = np.zeros((h, w), np.float32)
    for y0 in ys:
        th = min(tile, h)
        wy = ramp(th, overlap, y0 == 0, y0 + th >= h)
        for x0 in xs:
            tw = min(tile, w)
            wx = ramp(tw, overlap, x0 == 0, x0 + tw >= w)
            win = wy[:, None] * wx[None, :]
            pred = _run(model, x[y0 : y0 + th, x0 : x0 + tw], device, sigma)
            out[y0 : y0 + th, x0 : x0 + tw] += pred * win
            weight[y0 : y0 + th, x0 : x0 + tw] += win
    return (out / weight)[:h0, :w0]


def denoise_array(
    model: Denoiser,
    image: np.ndarray,
    *,
    low: float = 0.1,
    high: float = 99.9,
    tile: int | None = None,
    overlap: int = 64,
    device: torch.device | None = None,
) -> np.ndarray:
    """Denoise one 2D image in its own intensity scale (float32, same shape)."""
    x, (lo, hi) = normalize_percentile(image, low, high)
    y = denoise_normalized(model, x, tile=tile, overlap=overlap, device=device)
    return denormalize(y, lo, hi)
