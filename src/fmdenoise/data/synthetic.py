"""The embedded demo study's source: synthetic Hagen-like paired fluorescence images.

Each scene is a structure map in [0, 1] (actin filaments, mitochondria, nuclei or membranes),
imaged by a widefield (broad PSF plus out-of-focus haze) or confocal (narrow PSF) model, then
rendered twice: a low-exposure and a high-exposure acquisition with Poisson shot noise, Gaussian
read noise and a camera offset, as 32-bit float. The datasets are packed into one archive in the
layout of the public Hagen stacks (``{name}-lowsnr.tif`` / ``{name}-highsnr.tif``, one image per
page, train and test sides, plus one provided method output on the test side), so that the demo
goes through the same download, extraction and ingest code as the real study.
"""

from __future__ import annotations

import io
import tarfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
from scipy import ndimage

from fmdenoise.io import atomic_path, save_npy, write_json

BACKGROUND = 0.03


def _draw_points(img: np.ndarray, ys: np.ndarray, xs: np.ndarray, value: float) -> None:
    h, w = img.shape
    ok = (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)
    np.maximum.at(img, (ys[ok].astype(int), xs[ok].astype(int)), value)


def actin(size: int, rng: np.random.Generator) -> np.ndarray:
    """Long, gently curving thin filaments."""
    img = np.zeros((size, size), np.float32)
    for _ in range(rng.integers(12, 22)):
        n = int(rng.uniform(0.5, 1.2) * size * 2)
        angle = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0, 0.03, n))
        y = rng.uniform(0, size) + np.cumsum(0.5 * np.sin(angle))
        x = rng.uniform(0, size) + np.cumsum(0.5 * np.cos(angle))
        _draw_points(img, y, x, rng.uniform(0.4, 1.0))
    return ndimage.gaussian_filter(img, 0.6)


def mito(size: int, rng: np.random.Generator) -> np.ndarray:
    """Short tubular blobs, clustered around a few cell centres."""
    img = np.zeros((size, size), np.float32)
    centres = rng.uniform(0.2 * size, 0.8 * size, size=(rng.integers(2, 4), 2))
    for _ in range(rng.integers(30, 60)):
        cy, cx = centres[rng.integers(len(centres))] + rng.normal(0, size / 6, 2)
        length, theta = rng.uniform(4, 14), rng.uniform(0, np.pi)
        t = np.linspace(-length / 2, length / 2, 40)
        _draw_points(img, cy + t * np.sin(theta), cx + t * np.cos(theta), rng.uniform(0.5, 1.0))
    img = ndimage.grey_dilation(img, size=(2, 2))
    return ndimage.gaussian_filter(img, 1.0)


def nucleus(size: int, rng: np.random.Generator) -> np.ndarray:
    """Large textured ellipses."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    img = np.zeros((size, size), np.float32)
    texture = ndimage.gaussian_filter(rng.normal(0, 1, (size, size)), 2.0)
    texture = 0.7 + 0.3 * texture / (np.abs(texture).max() + 1e-6)
    for _ in range(rng.integers(3, 7)):
        cy, cx = rng.uniform(0, size, 2)
        ry, rx = rng.uniform(0.08, 0.18, 2) * size
        th = rng.uniform(0, np.pi)
        dy, dx = yy - cy, xx - cx
        u = (dy * np.cos(th) + dx * np.sin(th)) / ry
        v = (-dy * np.sin(th) + dx * np.cos(th)) / rx
        inside = (u**2 + v**2) <= 1
        img = np.maximum(img, inside * rng.uniform(0.5, 1.0) * texture)
    return ndimage.gaussian_filter(img.astype(np.float32), 1.0)


def membrane(size: int, rng: np.random.Generator) -> np.ndarray:
    """Cell outlines: the boundaries of a Voronoi tessellation."""
    seeds = rng.uniform(0, size, size=(rng.integers(8, 16), 2))
    yy, xx = np.mgrid[0:size, 0:size]
    d = (yy[..., None] - seeds[:, 0]) ** 2 + (xx[..., None] - seeds[:, 1]) ** 2
    labels = d.argmin(-1)
    edge = np.zeros((size, size), bool)
    edge[:-1] |= labels[:-1] != labels[1:]
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    img = edge.astype(np.float32) * rng.uniform(0.6, 1.0)
    return ndimage.gaussian_filter(img, 0.8)


STRUCTURES = {"actin": actin, "mito": mito, "nucleus": nucleus, "membrane": membrane}


def optics(structure: np.ndarray, modality: str) -> np.ndarray:
    """Blur a structure map by the microscope model; returns clean intensity, max ~1."""
    if modality == "widefield":
        img = ndimage.gaussian_filter(structure, 1.6) + 0.4 * ndimage.gaussian_filter(
            structure, 8.0
        )
    else:
        img = ndimage.gaussian_filter(structure, 0.9)
    img = img / (img.max() + 1e-6)
    return (img + BACKGROUND).astype(np.float32)


def acquire(
    clean: np.ndarray, photons: float, read_noise: float, offset: float, rng: np.random.Generator
) -> np.ndarray:
    """One camera acquisition of ``clean`` at ``photons`` per unit intensity (float32)."""
    counts = rng.poisson(clean * photons).astype(np.float32)
    return counts + rng.normal(offset, read_noise, clean.shape).astype(np.float32)


def render_dataset(
    spec: Mapping[str, Any], n: int, size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` (low, high) exposure pairs of one dataset, each (n, size, size) float32."""
    make = STRUCTURES[spec["structure"]]
    lows, highs = [], []
    for _ in range(n):
        clean = optics(make(size, rng), spec["modality"])
        kw = {"read_noise": spec.get("read_noise", 2.0), "offset": spec.get("offset", 100.0)}
        lows.append(acquire(clean, spec.get("photons_low", 8.0), rng=rng, **kw))
        highs.append(acquire(clean, spec.get("photons_high", 200.0), rng=rng, **kw))
    return np.stack(lows), np.stack(highs)


def _tiff_bytes(stack: np.ndarray) -> bytes:
    buf = io.BytesIO()
    tifffile.imwrite(buf, stack.astype(np.float32), photometric="minisblack")
    return buf.getvalue()


def source_files(cfg: Mapping[str, Any]) -> dict[str, bytes]:
    """Archive member name -> content for the whole synthetic source."""
    rng = np.random.default_rng(cfg.get("seed", 0))
    size, n_train, n_test = cfg.get("size", 160), cfg.get("n_train", 12), cfg.get("n_test", 4)
    files: dict[str, bytes] = {}
    for name, spec in sorted(cfg["datasets"].items()):
        for side, n in (("train", n_train), ("test", n_test)):
            low, high = render_dataset(spec, n, size, rng)
            files[f"hagen-demo/{name}/{side}/{name}-lowsnr.tif"] = _tiff_bytes(low)
            files[f"hagen-demo/{name}/{side}/{name}-highsnr.tif"] = _tiff_bytes(high)
            if side == "test":
                smooth = np.stack([ndimage.gaussian_filter(x, 1.5) for x in low])
                files[f"hagen-demo/{name}/test/gaussian/{name}-gaussian.tif"] = _tiff_bytes(smooth)
    return files


def write_source_archive(cfg: Mapping[str, Any], path: str | Path) -> Path:
    """Write the synthetic source as a tar(.gz) or zip archive, atomically and reproducibly."""
    path = Path(path)
    files = source_files(cfg)
    with atomic_path(path) as tmp:
        if path.suffix == ".zip":
            with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
                for name, data in files.items():
                    zf.writestr(zipfile.ZipInfo(name, date_time=(2021, 1, 1, 0, 0, 0)), data)
        else:
            gz = path.name.endswith(("gz", "tgz"))
            with tarfile.open(tmp, "w:gz") if gz else tarfile.open(tmp, "w") as tf:
                for name, data in files.items():
                    info = tarfile.TarInfo(name)
                    info.size, info.mtime, info.mode = len(data), 0, 0o644
                    tf.addfile(info, io.BytesIO(data))
    return path


def write_toy_patches(
    path: str | Path, n_train: int, size: int, n_val: int = 8, noise: float = 0.1, seed: int = 0
) -> Path:
    """A patch folder in the layout of :mod:`fmdenoise.data.patches` holding random images plus
    Gaussian noise: for tests and benchmarks of the training loop."""
    path = Path(path)
    rng = np.random.default_rng(seed)
    for split, count in (("train", n_train), ("val", n_val)):
        clean = rng.random((count, 1, size, size), dtype=np.float32)
        save_npy(path / f"{split}_gt.npy", clean)
        save_npy(
            path / f"{split}_low.npy", clean + rng.normal(0, noise, clean.shape).astype(np.float32)
        )
    write_json(path / "patches.json", {"toy": True, "n_train": n_train, "size": size, "seed": seed})
    return path
