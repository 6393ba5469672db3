"""What a rehearsal serves: a synthetic source shaped like the real Hagen data, and random
full-size weights in the three official checkpoint containers.

A dataset whose source is a folder (``kind: folder``, the published layout,
:func:`write_published_dataset`) becomes a numbered folder of two plain stacks
``NN-<dataset>/<dataset>-lowsnr.tif`` / ``-highsnr.tif`` holding all its pairs, unsplit, the
high-SNR stack on its own intensity scale (more photons), as GigaDB serves them; a readme sits
beside. A dataset whose source is an archive becomes one zip under its download key: stacks
``<dataset>-lowsnr.tif`` / ``<dataset>-highsnr.tif`` (one image per page) on a ``train`` and a
``test`` side, actin and mito of one magnification in one folder (``60x-noise2/``), membrane and
nucleus alone, plus one method output on the test side (``<dataset>-gaussian.tif``) as the
authors' outputs would be. Pair counts and image sizes are the config's ``expected`` ones,
times a scale factor. Stacks are written page by page, so a 2048x2048 dataset never sits in
memory whole.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
import torch
from scipy import ndimage

from fmdenoise.data.synthetic import STRUCTURES, acquire, optics
from fmdenoise.errors import ConfigError
from fmdenoise.io import atomic_path
from fmdenoise.models import GRAY_DEFAULTS, build

#: photons per unit intensity at low / high exposure (widefield, confocal)
PHOTONS = {"widefield": (6.0, 150.0), "confocal": (10.0, 250.0)}


def structure_of(dataset: str) -> str:
    """``actin-60x-noise2`` -> ``actin`` (the first word names the stained structure)."""
    word = dataset.split("-")[0]
    if word not in STRUCTURES:
        raise ConfigError(
            f"datasets.{dataset}: cannot tell its structure ({', '.join(STRUCTURES)})"
        )
    return word


def folder_of(dataset: str) -> str:
    """The archive folder: actin/mito of one magnification share one, others stand alone."""
    word, _, rest = dataset.partition("-")
    return rest if word in ("actin", "mito") and rest else dataset


def scaled_size(expected: Mapping[str, int], scale: float, pair_scale: float) -> dict[str, int]:
    """The rendered size: sides x ``scale`` (multiples of 16, at least 128), pairs x
    ``pair_scale`` (at least 3 train-side pairs: train, val and one spare; 1 test pair)."""

    def side(n: int) -> int:
        return max(128, round(n * scale / 16) * 16)

    return {
        "train_pairs": max(3, round(expected["train_pairs"] * pair_scale)),
        "test_pairs": max(1, round(expected["test_pairs"] * pair_scale)),
        "height": side(expected["height"]),
        "width": side(expected["width"]),
    }


def _write_stacks(
    folder: Path,
    name: str,
    side: str,
    n: int,
    shape: tuple[int, int],
    modality: str,
    rng: np.random.Generator,
) -> None:
    make = STRUCTURES[structure_of(name)]
    low_ph, high_ph = PHOTONS[modality]
    folder.mkdir(parents=True, exist_ok=True)
    paths = {r: folder / f"{name}-{r}.tif" for r in ("lowsnr", "highsnr", "gaussian")}
    if side == "train":
        paths.pop("gaussian")
    writers = {r: tifffile.TiffWriter(p) for r, p in paths.items()}
    try:
        for _ in range(n):
            clean = optics(make(max(shape), rng)[: shape[0], : shape[1]], modality)
            low = acquire(clean, low_ph, 2.0, 100.0, rng)
            planes = {"lowsnr": low, "highsnr": acquire(clean, high_ph, 2.0, 100.0, rng)}
            planes["gaussian"] = ndimage.gaussian_filter(low, 1.5)
            for role, writer in writers.items():
                writer.write(
                    planes[role].astype(np.float32), photometric="minisblack", contiguous=True
                )
    finally:
        for writer in writers.values():
            writer.close()


def write_dataset_archive(
    name: str, modality: str, size: Mapping[str, int], path: Path, seed: int
) -> Path:
    """One dataset's zip (see the module docstring), written atomically."""
    rng = np.random.default_rng(seed)
    shape = (size["height"], size["width"])
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / folder_of(name)
        for side, n in (("train", size["train_pairs"]), ("test", size["test_pairs"])):
            _write_stacks(root / side, name, side, n, shape, modality, rng)
        with atomic_path(path) as out, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
            for f in sorted(root.rglob("*.tif")):
                zf.write(f, f.relative_to(Path(tmp)).as_posix())
    return path


#: the published folder numbers known (krulllab/COSDD notebooks): both confocal datasets in 03-
KNOWN_NUMBERS = {"actin-confocal": 3, "mito-confocal": 3}


def published_folder(name: str, index: int) -> str:
    """``NN-<name>``: the known number, else ``index`` (the other folders' numbers are not
    known; any number works with the default globs)."""
    return f"{KNOWN_NUMBERS.get(name, index):02d}-{name}"


def write_published_dataset(
    name: str, modality: str, size: Mapping[str, int], root: Path, index: int, seed: int
) -> Path:
    """Dataset ``name`` in the published layout under ``root`` (see the module docstring):
    ``train_pairs + test_pairs`` pages per stack, no split. Returns its folder."""
    rng = np.random.default_rng(seed)
    folder = root / published_folder(name, index)
    if not (folder / f"{name}-highsnr.tif").exists():
        with tempfile.TemporaryDirectory(dir=root.parent if root.parent.exists() else None) as tmp:
            n = size["train_pairs"] + size["test_pairs"]
            shape = (size["height"], size["width"])
            _write_stacks(Path(tmp), name, "train", n, shape, modality, rng)
            folder.mkdir(parents=True, exist_ok=True)
            for role in ("lowsnr", "highsnr"):  # highsnr last: it marks a complete folder
                os.replace(Path(tmp) / f"{name}-{role}.tif", folder / f"{name}-{role}.tif")
    readme = root / "readme.txt"
    if not readme.exists():
        readme.write_text("Synthetic stand-in for GigaDB 100888 (Hagen et al. 2021).\n")
    return folder


def official_container(arch: str, fmt: str, seed: int = 0) -> dict[str, Any]:
    """Random full-size weights of ``arch`` in its published container: KAIR's plain state
    dict, Restormer's ``{'params': ...}``, KBNet's ``{'net': ...}`` with DataParallel's
    ``module.`` prefixes."""
    torch.manual_seed(seed)
    state = build(arch, **GRAY_DEFAULTS[arch]).state_dict()
    if fmt == "kair":
        return state
    if fmt == "restormer":
        return {"params": state}
    if fmt == "kbnet":
        return {"net": {f"module.{k}": v for k, v in state.items()}}
    raise ConfigError(f"no published container format {fmt!r}")


def write_checkpoint(arch: str, fmt: str, path: Path) -> Path:
    with atomic_path(path) as tmp:
        torch.save(official_container(arch, fmt), tmp)
    return path
