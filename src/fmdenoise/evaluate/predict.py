"""Test-set predictions of one method on one dataset, written as float32 TIFFs.

Methods: ``raw`` (the noisy input itself), ``provided-<name>`` (the authors' outputs found in
the data), ``bm3d`` (the ``bm3d`` package, noise level estimated on the normalised input),
``bm3d-vst`` (BM3D after the generalized Anscombe transform with the image's own gain and read
noise, and its exact unbiased inverse: the Poisson-Gaussian way), and
model checkpoints (fine-tuned runs selected on validation, or pretrained weights zero-shot),
all through the same tiled inference.

Beside the images, ``timing.json`` records the compute time of the method (reading and
writing excluded), the megapixels processed, the device and, for models, the parameter count:
the inference side of the cost table.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fmdenoise import device as dev
from fmdenoise.data.ingest import read_manifest
from fmdenoise.data.noise import estimate_noise
from fmdenoise.data.normalize import denormalize, normalize_percentile
from fmdenoise.errors import FmdenoiseError
from fmdenoise.evaluate.inference import denoise_array
from fmdenoise.evaluate.processes import process_map
from fmdenoise.evaluate.vst import gat, inverse_gat
from fmdenoise.io import atomic_dir, read_image, write_json, write_tiff
from fmdenoise.models import count_parameters
from fmdenoise.models.checkpoints import load_model
from fmdenoise.models.wrapper import Denoiser, estimate_sigma
from fmdenoise.settings import NormalizationSettings
from fmdenoise.study import METHOD_KINDS


def _bm3d(image: np.ndarray, sigma: float) -> np.ndarray:
    """The ``bm3d`` package's BM3D (its default ``np`` profile) on one thread: with its own
    threads (the default, one per core) its aggregation order, and so the last digits of the
    result, change from run to run (the library says so; measured: up to 0.002 on a demo
    image). One image per process (:func:`parallel_bm3d`) makes the job's CPUs its threads."""
    import bm3d

    profile = bm3d.BM3DProfile()
    profile.num_threads = 1
    return np.asarray(bm3d.bm3d(image, sigma_psd=sigma, profile=profile))


def bm3d_denoise(image: np.ndarray, low: float, high: float) -> np.ndarray:
    """BM3D on the percentile-normalised image with its estimated noise level."""
    x, (lo, hi) = normalize_percentile(image, low, high)
    sigma = float(estimate_sigma(torch.from_numpy(x)[None, None])[0])
    return denormalize(_bm3d(x, max(sigma, 1e-4)).astype(np.float32), lo, hi)


def bm3d_vst_denoise(image: np.ndarray) -> np.ndarray:
    """BM3D in the variance-stabilised domain: gain and read-noise level estimated on the image,
    generalized Anscombe transform, BM3D at unit noise, exact unbiased inverse
    (:mod:`fmdenoise.evaluate.vst`)."""
    alpha, beta = estimate_noise(image)
    stabilised = gat(image, alpha, beta)
    denoised = _bm3d(stabilised, 1.0).astype(np.float64)
    return inverse_gat(denoised, alpha, beta).astype(np.float32)


def _bm3d_worker_init() -> None:
    torch.set_num_threads(1)  # one image per process: no oversubscription


def _bm3d_file(path: Path, kind: str, low: float, high: float) -> np.ndarray:
    if kind == "bm3d-vst":
        return bm3d_vst_denoise(read_image(path))
    return bm3d_denoise(read_image(path), low, high)


def parallel_bm3d(
    paths: Sequence[Path], norm: NormalizationSettings, workers: int, kind: str = "bm3d"
) -> Iterator[np.ndarray]:
    """BM3D (``kind`` bm3d or bm3d-vst) of many images, one image per process, results in
    input order (processes: the ``bm3d`` library's native thread pool is global, so two threads
    calling it abort the interpreter; :mod:`~fmdenoise.evaluate.processes` says why this pool
    works inside a Snakemake job)."""
    n = len(paths)
    low, high = [norm.low_percentile] * n, [norm.high_percentile] * n
    args = (paths, [kind] * n, low, high)
    yield from process_map(_bm3d_file, *args, workers=workers, initializer=_bm3d_worker_init)


def load_method_model(method: Mapping[str, Any], device: torch.device) -> Denoiser | None:
    """The prepared network of a neural method (eval mode on ``device``); None otherwise."""
    if not METHOD_KINDS[method["kind"]].neural:
        return None
    net, meta = load_model(method["checkpoint"])
    wrapped = Denoiser(net, meta["arch"], meta["kwargs"], method.get("noise_level"))
    return dev.prepare(wrapped, device).eval()


def method_function(
    method: Mapping[str, Any],
    data_dir: Path,
    norm: NormalizationSettings,
    model: Denoiser | None,
    *,
    tile: int | None,
    overlap: int,
) -> Callable[[str, np.ndarray], np.ndarray]:
    """``f(name, noisy) -> prediction`` for ``method`` (see :func:`predict_dataset`)."""
    low_p, high_p = norm.low_percentile, norm.high_percentile
    kind = method["kind"]
    if kind == "raw":
        return lambda _name, low: low
    if kind == "provided":

        def provided(name: str, _low: np.ndarray) -> np.ndarray:
            src = data_dir / "test" / "provided" / method["name"] / f"{name}.tif"
            if not src.is_file():
                raise FmdenoiseError(f"{src}: provided output of {method['name']!r} missing")
            return read_image(src)

        return provided
    if kind == "bm3d":
        return lambda _name, low: bm3d_denoise(low, low_p, high_p)
    if kind == "bm3d-vst":
        return lambda _name, low: bm3d_vst_denoise(low)
    if METHOD_KINDS[kind].neural and model is not None:
        return lambda _name, low: denoise_array(
            model, low, low=low_p, high=high_p, tile=tile, overlap=overlap
        )
    raise FmdenoiseError(f"unknown method kind {kind!r}")


def _run_serial(
    low_paths: Sequence[Path], out: Path, apply: Callable[[str, np.ndarray], np.ndarray]
) -> tuple[float, int]:
    """Predict image by image; returns (compute seconds, pixels)."""
    seconds, pixels = 0.0, 0
    for path in low_paths:
        low = read_image(path)
        start = time.perf_counter()
        pred = apply(path.stem, low)
        seconds += time.perf_counter() - start
        pixels += low.size
        write_tiff(out / path.name, pred)
    return seconds, pixels


def _run_parallel_bm3d(
    low_paths: Sequence[Path], out: Path, norm: NormalizationSettings, workers: int, kind: str
) -> tuple[float, int]:
    """BM3D over ``workers`` processes; returns (wall seconds of the set, pixels)."""
    start, pixels = time.perf_counter(), 0
    results = parallel_bm3d(low_paths, norm, workers, kind)
    for path, pred in zip(low_paths, results, strict=True):
        pixels += pred.size
        write_tiff(out / path.name, pred)
    return time.perf_counter() - start, pixels


def predict_dataset(
    method: Mapping[str, Any],
    data_dir: str | Path,
    out_dir: str | Path,
    norm: NormalizationSettings,
    *,
    tile: int | None = None,
    overlap: int = 64,
    device: str = "auto",
    workers: int = 1,
) -> list[str]:
    """Write ``out_dir/<image>.tif`` for every test image; returns the image names.

    ``method``: ``{"kind": "raw"}``, ``{"kind": "provided", "name": ...}``, ``{"kind": "bm3d"}``
    or, for a network (a kind of :data:`~fmdenoise.study.METHOD_KINDS` that is ``neural``),
    ``{"kind": "finetuned", "checkpoint": path, "noise_level": {...}}``. BM3D runs ``workers``
    images at once (the job's CPUs); its timing is then the wall time of the whole set.
    """
    data_dir = Path(data_dir)
    manifest = read_manifest(data_dir)
    test = manifest[manifest["split"] == "test"]
    kind = METHOD_KINDS.get(method["kind"])
    if kind is None:
        raise FmdenoiseError(f"unknown method kind {method['kind']!r}")
    device_t = dev.resolve(device) if kind.neural else torch.device("cpu")
    model = load_method_model(method, device_t)
    apply = method_function(method, data_dir, norm, model, tile=tile, overlap=overlap)
    names = sorted(test[test["role"] == "low"]["image"])
    workers = max(1, min(workers, len(names))) if kind.classical else 1
    with atomic_dir(out_dir) as tmp:
        low_paths = [data_dir / "test" / "low" / f"{name}.tif" for name in names]
        if workers > 1:
            seconds, pixels = _run_parallel_bm3d(low_paths, tmp, norm, workers, method["kind"])
        else:
            seconds, pixels = _run_serial(low_paths, tmp, apply)
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
                "workers": workers,
                "parameters": count_parameters(model) if model is not None else None,
            },
        )
    return names
