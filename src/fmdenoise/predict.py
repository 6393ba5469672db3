"""Test-set predictions of one method on one dataset, written as float32 TIFFs.

Methods: ``raw`` (the noisy input itself), ``provided-<name>`` (the authors' outputs found in
the data), ``bm3d`` (the ``bm3d`` package, noise level estimated on the normalised input), and
model checkpoints (fine-tuned runs selected on validation, or pretrained weights zero-shot),
all through the same tiled inference.

Beside the images, ``timing.json`` records the compute time of the method (reading and
writing excluded), the megapixels processed, the device and, for models, the parameter count:
the inference side of the cost table.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fmdenoise import device as dev
from fmdenoise.errors import FmdenoiseError
from fmdenoise.inference import denoise_array
from fmdenoise.ingest import read_manifest
from fmdenoise.io import atomic_dir, read_image, write_json, write_tiff
from fmdenoise.models import count_parameters
from fmdenoise.models.checkpoints import load_model
from fmdenoise.models.wrapper import Denoiser, estimate_sigma
from fmdenoise.normalize import denormalize, normalize_percentile


def bm3d_denoise(image: np.ndarray, low: float, high: float) -> np.ndarray:
    """BM3D on the percentile-normalised image with its estimated noise level."""
    import bm3d

    x, (lo, hi) = normalize_percentile(image, low, high)
    sigma = float(estimate_sigma(torch.from_numpy(x)[None, None])[0])
    return denormalize(np.asarray(bm3d.bm3d(x, sigma_psd=max(sigma, 1e-4)), np.float32), lo, hi)


def predict_dataset(
    method: Mapping[str, Any],
    data_dir: str | Path,
    out_dir: str | Path,
    norm: Mapping[str, Any],
    *,
    tile: int | None = None,
    overlap: int = 64,
    device: str = "auto",
) -> list[str]:
    """Write ``out_dir/<image>.tif`` for every test image; returns the image names.

    ``method``: ``{"kind": "raw"}``, ``{"kind": "provided", "name": ...}``, ``{"kind": "bm3d"}``
    or ``{"kind": "model", "checkpoint": path, "noise_level": {...}}``.
    """
    data_dir = Path(data_dir)
    manifest = read_manifest(data_dir)
    test = manifest[manifest["split"] == "test"]
    low_p, high_p = norm["low_percentile"], norm["high_percentile"]
    model = None
    device_t = dev.resolve(device) if method["kind"] == "model" else torch.device("cpu")
    if method["kind"] == "model":
        net, meta = load_model(method["checkpoint"])
        model = dev.prepare(
            Denoiser(net, meta["arch"], meta["kwargs"], method.get("noise_level")), device_t
        ).eval()
    names = sorted(test[test["role"] == "low"]["image"])
    seconds, pixels = 0.0, 0
    with atomic_dir(out_dir) as tmp:
        for name in names:
            low = read_image(data_dir / "test" / "low" / f"{name}.tif")
            start = time.perf_counter()
            if method["kind"] == "raw":
                out = low
            elif method["kind"] == "provided":
                src = data_dir / "test" / "provided" / method["name"] / f"{name}.tif"
                if not src.is_file():
                    raise FmdenoiseError(f"{src}: provided output of {method['name']!r} missing")
                out = read_image(src)
            elif method["kind"] == "bm3d":
                out = bm3d_denoise(low, low_p, high_p)
            elif model is not None:
                out = denoise_array(model, low, low=low_p, high=high_p, tile=tile, overlap=overlap)
            else:
                raise FmdenoiseError(f"unknown method kind {method['kind']!r}")
            seconds += time.perf_counter() - start
            pixels += low.size
            write_tiff(tmp / f"{name}.tif", out)
        write_json(
            tmp / "timing.json",
            {
                "method": dict(method),
                "images": len(names),
                "megapixels": pixels / 1e6,
                "seconds": seconds,
                "seconds_per_megapixel": seconds / max(pixels / 1e6, 1e-12),
                "device": str(device_t),
                "device_type": device_t.type,
                "threads": torch.get_num_threads(),
                "tile": tile,
                "overlap": overlap,
                "parameters": count_parameters(model) if model is not None else None,
            },
        )
    return names
