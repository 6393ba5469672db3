"""CARE-style patch extraction into memory-mappable ``.npy`` arrays.

For each image of a split, noisy input and ground truth are normalised by their own
percentiles (:mod:`fmdenoise.data.normalize`, the rule inference uses), then ``per_image`` patch
positions are drawn with a seeded generator. As in CSBDeep, a position is *foreground* when the
max-filtered ground truth there exceeds ``foreground_threshold`` times the image's 99.9th
percentile; ``foreground_fraction`` of the patches are drawn from foreground positions, the
rest uniformly. Output per split: ``{split}_low.npy`` and ``{split}_gt.npy`` of shape
(N, 1, size, size), float32, plus ``patches.json`` describing what was done.
"""

from __future__ import annotations

import dataclasses
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from fmdenoise.data.ingest import split_images
from fmdenoise.data.noise import noise_range
from fmdenoise.data.normalize import normalize_percentile
from fmdenoise.errors import ImageError
from fmdenoise.io import read_image, save_npy, write_json
from fmdenoise.settings import NormalizationSettings, PatchSettings

PATCH_SPLITS = ("train", "val")


def foreground_mask(gt: np.ndarray, size: int, threshold: float) -> np.ndarray:
    """Boolean map of valid top-left corners whose patch holds ground-truth signal."""
    filtered = ndimage.maximum_filter(gt, size=max(1, size // 2), mode="reflect")
    level = threshold * np.percentile(gt, 99.9)
    centre = filtered > level
    h, w = gt.shape
    # corner (y, x) is foreground when the patch centre (y + size//2, x + size//2) is.
    return centre[size // 2 : size // 2 + h - size + 1, size // 2 : size // 2 + w - size + 1]


def sample_corners(
    gt: np.ndarray,
    size: int,
    n: int,
    *,
    threshold: float,
    fraction: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """``n`` top-left corners ``(y, x)``: ``fraction`` from foreground, the rest uniform."""
    h, w = gt.shape
    if h < size or w < size:
        raise ImageError(f"image of shape {gt.shape} is smaller than the patch size {size}")
    mask = foreground_mask(gt, size, threshold)
    fg = np.argwhere(mask)
    n_fg = round(n * fraction) if len(fg) else 0
    picks = fg[rng.integers(0, len(fg), size=n_fg)] if n_fg else np.empty((0, 2), dtype=np.int64)
    uni = np.stack(
        [
            rng.integers(0, h - size + 1, size=n - n_fg),
            rng.integers(0, w - size + 1, size=n - n_fg),
        ],
        axis=1,
    )
    return np.concatenate([picks, uni]).astype(np.int64)


def cut(image: np.ndarray, corners: np.ndarray, size: int) -> np.ndarray:
    """Patches of ``image`` at ``corners`` as (N, 1, size, size) float32."""
    out = np.empty((len(corners), 1, size, size), dtype=np.float32)
    for i, (y, x) in enumerate(corners):
        out[i, 0] = image[y : y + size, x : x + size]
    return out


def _image_seed(seed: int, split: str, name: str) -> int:
    return zlib.crc32(f"{seed}/{split}/{name}".encode())


def extract_split(
    data_dir: str | Path,
    split: str,
    patches: PatchSettings,
    norm: NormalizationSettings,
) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
    """Patches of every image of ``split``; also returns per-image records for patches.json."""
    size, per_image = int(patches.size), int(patches.per_image)
    low_p, high_p = norm.low_percentile, norm.high_percentile
    lows, gts, records = [], [], []
    for name, low_path, gt_path in split_images(data_dir, split):
        low, (llo, lhi) = normalize_percentile(read_image(low_path), low_p, high_p)
        gt, (glo, ghi) = normalize_percentile(read_image(gt_path), low_p, high_p)
        rng = np.random.default_rng(_image_seed(int(patches.seed), split, name))
        try:
            corners = sample_corners(
                gt,
                size,
                per_image,
                threshold=float(patches.foreground_threshold),
                fraction=float(patches.foreground_fraction),
                rng=rng,
            )
        except ImageError as exc:
            raise ImageError(f"{low_path}: {exc}") from exc
        lows.append(cut(low, corners, size))
        gts.append(cut(gt, corners, size))
        records.append(
            {"image": name, "n": len(corners), "low_range": [llo, lhi], "gt_range": [glo, ghi]}
        )
    if not lows:
        raise ImageError(f"{data_dir}: split {split!r} has no images")
    return np.concatenate(lows), np.concatenate(gts), records


def build_patches(
    data_dir: str | Path,
    out_dir: str | Path,
    patches: PatchSettings,
    norm: NormalizationSettings,
) -> dict[str, Any]:
    """Write ``{split}_low.npy``, ``{split}_gt.npy`` for train and val, then ``patches.json``
    (with the noise range of the training images, :mod:`fmdenoise.data.noise`)."""
    out_dir = Path(out_dir)
    info: dict[str, Any] = {
        "params": dataclasses.asdict(patches),
        "normalization": dataclasses.asdict(norm),
        "splits": {},
    }
    for split in PATCH_SPLITS:
        low, gt, records = extract_split(data_dir, split, patches, norm)
        save_npy(out_dir / f"{split}_low.npy", low)
        save_npy(out_dir / f"{split}_gt.npy", gt)
        info["splits"][split] = {"count": len(low), "shape": list(low.shape), "images": records}
    # the noise the models will be trained on (fmdenoise.data.noise): runs record it, denoise
    # checks a user's images against it
    info["noise"] = noise_range(
        (read_image(low_path) for _, low_path, _ in split_images(data_dir, "train")),
        float(norm.low_percentile),
        float(norm.high_percentile),
    )
    write_json(out_dir / "patches.json", info)
    return info


def load_patches(patch_dir: str | Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Memory-map the ``split`` patch arrays (read-only)."""
    d = Path(patch_dir)
    return (
        np.load(d / f"{split}_low.npy", mmap_mode="r"),
        np.load(d / f"{split}_gt.npy", mmap_mode="r"),
    )
