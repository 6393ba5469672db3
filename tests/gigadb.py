"""A GigaDB-shaped tree for the tests: the Hagen data as published (numbered per-dataset
folders of plain unsplit stacks ``<dataset>-lowsnr.tif`` / ``-highsnr.tif``, the high-SNR
stack on another intensity scale), a readme and a checksum list beside, and one dataset
(nucleus) that does have test files and an authors' method output, as the poster says the
data should."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile

#: dataset -> (folder, pages of its train-side stacks, test-side pages or 0)
PUBLISHED = {
    "actin-confocal": ("03-actin-confocal", 10, 0),
    "mito-confocal": ("03-mito-confocal", 12, 0),
    "nucleus": ("07-nucleus", 8, 3),
}
SHAPE = (24, 32)


def write_stack(path: Path, n: int, seed: int, scale: float = 1.0) -> None:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = (rng.random((n, *SHAPE), dtype=np.float32) + 0.1) * scale
    tifffile.imwrite(path, data.astype(np.float32), photometric="minisblack")


def make_published_tree(root: Path) -> Path:
    """Write the tree under ``root`` and return it."""
    seed = 0
    for name, (folder, pages, test_pages) in PUBLISHED.items():
        for role, scale in (("lowsnr", 1.0), ("highsnr", 50.0)):
            seed += 1
            write_stack(root / folder / f"{name}-{role}.tif", pages, seed, scale)
            if test_pages:
                write_stack(root / folder / "test" / f"{name}-{role}.tif", test_pages, 99, scale)
        if test_pages:
            write_stack(root / folder / "test" / f"{name}-care.tif", test_pages, 7, 50.0)
    (root / "readme_100888.txt").write_text("Hagen et al. 2021, GigaDB 100888\n")
    (root / "md5sums.txt").write_text("0  03-actin-confocal/actin-confocal-lowsnr.tif\n")
    return root
