"""Ingest a source layout into the study's paired, split, float32 TIFF layout.

Each dataset's config names globs (relative to its root inside the source: an extracted
archive, or the files fetched from a folder source) for the
noisy input (``low``), the ground truth (``gt``) and, on the test side, the authors' method
outputs (``provided``). Two source forms are understood:

- **stacks**: each glob matches one multi-page TIFF (e.g. ``nucleus-lowsnr.tif``); images
  pair by page index;
- **folders**: each glob matches many 2D TIFFs; images pair by the text the glob's wildcards
  matched (``train/low/*.tif`` and ``train/gt/*.tif`` pair ``img_01.tif`` with ``img_01.tif``).

``{dataset}`` in a glob or the root stands for the dataset's name (:func:`dataset_layout`), so
that one source holding several datasets' stacks (GigaDB's folder: ``03-actin-confocal/`` and
``03-mito-confocal/`` side by side, ``*/{dataset}-lowsnr.tif`` picking each one's own stack) is
read with the same globs for every dataset.

Every pair is checked (same 2D shape, finite values, non-constant ground truth). The test set
is the source's test files when its test globs match any (the authors' split); otherwise
(the published Hagen stacks come unsplit) the last ``round(test_fraction x N)`` of the N
pairs in key order, i.e. the stacks' last pages, as public code that uses these data does
(:func:`split_test`). A validation split is carved from the rest, by image, seeded; never from
test. Every manifest row names the rule that made its split (``split_rule``). The output
folder ``data/{dataset}`` is written atomically and ends with ``manifest.csv``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd

from fmdenoise.errors import ConfigError, ImageError
from fmdenoise.io import atomic_dir, read_tiff_page, sha256_file, tiff_page_count, write_tiff

SPLITS = ("train", "val", "test")


@dataclasses.dataclass(frozen=True)
class Plane:
    """One 2D image inside a source file."""

    path: Path
    page: int

    def read(self) -> np.ndarray:
        return read_tiff_page(self.path, self.page)

    def __str__(self) -> str:
        return f"{self.path}#{self.page}"


def dataset_layout(name: str, dataset_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """``dataset_cfg`` with ``{dataset}`` replaced by ``name`` in its root and every glob."""

    def expand(value: Any) -> Any:
        if isinstance(value, str):
            return value.replace("{dataset}", name)
        if isinstance(value, Mapping):
            return {k: expand(v) if k != "source" else v for k, v in value.items()}
        return value

    return expand(dataset_cfg)


#: the globs a source must match for a dataset to exist at all (test: see split_test)
REQUIRED_GLOBS = ("train.low", "train.gt")


def source_globs(name: str, dataset_cfg: Mapping[str, Any]) -> dict[str, str]:
    """Every glob of dataset ``name`` by role (``train.low``, ``train.gt``, ``test.low``,
    ``test.gt``, ``test.provided.<method>``), ``{dataset}`` expanded and relative to the
    source (the dataset's root joined in front)."""
    layout = dataset_layout(name, dataset_cfg)
    root = layout.get("root", ".").strip("/")
    prefix = "" if root in ("", ".") else root + "/"
    globs = {
        f"{side}.{role}": layout[side][role] for side in ("train", "test") for role in ("low", "gt")
    }
    for method, pattern in layout["test"].get("provided", {}).items():
        globs[f"test.provided.{method}"] = pattern
    return {role: prefix + pattern for role, pattern in globs.items()}


def glob_regex(pattern: str) -> re.Pattern[str]:
    """Regex for a glob with one capture group per wildcard (``**``, ``*``, ``?``)."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("((?:.*/)?)")
            i += 3
        elif pattern.startswith("**", i):
            out.append("(.*)")
            i += 2
        elif pattern[i] == "*":
            out.append("([^/]*)")
            i += 1
        elif pattern[i] == "?":
            out.append("([^/])")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def plane_keys(
    files: Sequence[str], pattern: str, pages: Callable[[str], int], where: str
) -> dict[str, tuple[str, int]]:
    """``key -> (file, page)`` of the planes in ``files`` (relative paths ``pattern``
    matched), keyed for pairing. A single file contributes its pages keyed ``0000``,
    ``0001``...; several files contribute one plane each, keyed by their wildcard text.
    ``pages(file)`` counts a file's pages; ``where`` names the folder in errors."""
    if not files:
        raise ImageError(f"{where}: no file matches {pattern!r}")
    if len(files) == 1:
        return {f"{i:04d}": (files[0], i) for i in range(pages(files[0]))}
    stacks = [(f, n) for f in files if (n := pages(f)) != 1]
    if stacks:
        names = ", ".join(files[:4])
        raise ImageError(
            f"{where}: {pattern!r} matches {len(files)} files ({names}"
            f"{', ...' if len(files) > 4 else ''}) and {PurePosixPath(stacks[0][0]).name} is a "
            f"stack of {stacks[0][1]} images: a glob must match one stack, or a folder of "
            "single images. Name the dataset in the glob (e.g. '*/{dataset}-lowsnr.tif'); "
            f"`fmdenoise inspect-source {where}` shows what each glob finds"
        )
    regex = glob_regex(pattern)
    keys: dict[str, tuple[str, int]] = {}
    for f in files:
        m = regex.match(f)
        key = "_".join(g.strip("/") for g in m.groups() if g) if m else PurePosixPath(f).stem
        key = re.sub(r"[^A-Za-z0-9_.-]+", "_", key) or PurePosixPath(f).stem
        keys[key] = (f, 0)
    return keys


def match_planes(root: Path, pattern: str) -> dict[str, Plane]:
    """Planes matched by ``pattern`` under ``root``, keyed for pairing (:func:`plane_keys`)."""
    files = sorted(p.relative_to(root).as_posix() for p in root.glob(pattern) if p.is_file())
    keys = plane_keys(files, pattern, lambda f: tiff_page_count(root / f), str(root))
    return {key: Plane(root / f, page) for key, (f, page) in keys.items()}


def pair_planes(
    low: Mapping[str, Plane], other: Mapping[str, Plane], what: str
) -> dict[str, tuple[Plane, Plane]]:
    """Pair planes by key; a key without partner raises :class:`ImageError` naming it."""
    missing = sorted(set(low) ^ set(other))
    if missing:
        k = missing[0]
        has, lacks = ("noisy", what) if k in low else (what, "noisy")
        src = low.get(k) or other.get(k)
        raise ImageError(
            f"{src}: {has} image {k!r} has no {lacks} partner "
            f"({len(low)} noisy vs {len(other)} {what} images)"
        )
    return {k: (low[k], other[k]) for k in sorted(low)}


def check_pair(low: np.ndarray, gt: np.ndarray, low_src: Any, gt_src: Any) -> None:
    """Raise :class:`ImageError` unless ``low``/``gt`` are a usable pair."""
    if low.shape != gt.shape:
        raise ImageError(f"{low_src} and {gt_src}: shape mismatch {low.shape} vs {gt.shape}")
    for img, src in ((low, low_src), (gt, gt_src)):
        if not np.isfinite(img).all():
            raise ImageError(f"{src}: contains NaN or Inf values")
    if float(gt.max()) == float(gt.min()):
        raise ImageError(f"{gt_src}: ground truth is constant ({gt.flat[0]}); nothing to learn")


def split_test(names: list[str], test_fraction: float | None) -> tuple[list[str], list[str]]:
    """``(train_side, test)``: the last ``round(test_fraction x N)`` (at least 1) of the N
    sorted keys are test, leaving at least 2 for train and validation."""
    if test_fraction is None:
        raise ConfigError(
            "split.test_fraction: null, and the dataset's test globs match nothing: give the "
            "test globs that find the source's test files, or a test_fraction to split it"
        )
    keys = sorted(names)
    n_test = max(1, round(test_fraction * len(keys)))
    if len(keys) - n_test < 2:
        raise ConfigError(
            f"split.test_fraction {test_fraction}: {len(keys)} pairs leave {len(keys) - n_test} "
            "for train and validation (need 2)"
        )
    return keys[:-n_test], keys[-n_test:]


def split_train_val(names: list[str], val_fraction: float, seed: int) -> dict[str, str]:
    """Assign each train-side image to 'train' or 'val' (by image, seeded, stable)."""
    if len(names) < 2:
        raise ConfigError(
            f"split: need at least 2 train-side images to carve validation, got {len(names)}"
        )
    order = np.random.default_rng(seed).permutation(sorted(names))
    n_val = min(max(1, round(val_fraction * len(names))), len(names) - 1)
    val = set(order[:n_val].tolist())
    return {n: ("val" if n in val else "train") for n in names}


def ingest_dataset(
    source_root: str | Path,
    dataset_cfg: Mapping[str, Any],
    out_dir: str | Path,
    *,
    val_fraction: float,
    seed: int,
    test_fraction: float | None = None,
) -> pd.DataFrame:
    """Ingest one dataset into ``out_dir`` (written atomically) and return its manifest."""
    root = Path(source_root) / dataset_cfg.get("root", ".")
    if not root.is_dir():
        raise ImageError(f"{root}: dataset root not found in the source")
    train_pairs = pair_planes(
        match_planes(root, dataset_cfg["train"]["low"]),
        match_planes(root, dataset_cfg["train"]["gt"]),
        "ground-truth",
    )
    test = dataset_cfg["test"]
    has_test = any(p.is_file() for p in root.glob(test["low"])) or any(
        p.is_file() for p in root.glob(test["gt"])
    )
    val_rule = f"val: {val_fraction:g} of the rest by image (seed {seed})"
    if has_test:
        test_low = match_planes(root, test["low"])
        test_pairs = pair_planes(test_low, match_planes(root, test["gt"]), "ground-truth")
        provided = {
            method: pair_planes(test_low, match_planes(root, pattern), f"'{method}' output")
            for method, pattern in test.get("provided", {}).items()
        }
        rule = f"test: the source's test files ({test['low']}); {val_rule}"
    else:
        if test.get("provided"):
            raise ConfigError(
                f"test.provided: method outputs need the source's test files, and "
                f"{test['low']!r} matches nothing under {root}"
            )
        kept, held = split_test(list(train_pairs), test_fraction)
        test_pairs = {k: train_pairs[k] for k in held}
        train_pairs = {k: train_pairs[k] for k in kept}
        provided = {}
        rule = (
            f"test: the last {len(held)} of {len(held) + len(kept)} pairs (no test files in "
            f"the source; split.test_fraction {test_fraction:g}); {val_rule}"
        )
    assignment = split_train_val(list(train_pairs), val_fraction, seed)
    rows: list[dict[str, Any]] = []
    with atomic_dir(out_dir) as tmp:
        for side, pairs in (("train", train_pairs), ("test", test_pairs)):
            for key, (lo, gt) in pairs.items():
                split = assignment[key] if side == "train" else "test"
                name = f"{side}-{key}"
                low_img, gt_img = lo.read(), gt.read()
                check_pair(low_img, gt_img, lo, gt)
                rows.append(_write(tmp, split, "low", name, low_img, lo))
                rows.append(_write(tmp, split, "gt", name, gt_img, gt))
                for method, method_pairs in provided.items():
                    if side != "test":
                        continue
                    src = method_pairs[key][1]
                    img = src.read()
                    if img.shape != low_img.shape:
                        raise ImageError(
                            f"{src}: shape {img.shape} differs from input {lo} {low_img.shape}"
                        )
                    rows.append(_write(tmp, split, f"provided/{method}", name, img, src))
        manifest = pd.DataFrame(rows).assign(split_rule=rule)
        manifest = manifest.sort_values(["split", "image", "role"], ignore_index=True)
        manifest.to_csv(tmp / "manifest.csv", index=False)
    return manifest


def _write(
    base: Path, split: str, role: str, name: str, img: np.ndarray, src: Plane
) -> dict[str, Any]:
    path = base / split / role / f"{name}.tif"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_tiff(path, img)
    return {
        "image": name,
        "split": split,
        "role": role,
        "path": path.relative_to(base).as_posix(),
        "height": img.shape[0],
        "width": img.shape[1],
        "dtype": "float32",
        "sha256": sha256_file(path),
        "source": f"{src.path.name}#{src.page}",
    }


def read_manifest(data_dir: str | Path) -> pd.DataFrame:
    """The manifest of an ingested dataset folder."""
    path = Path(data_dir) / "manifest.csv"
    if not path.is_file():
        raise ImageError(f"{path}: manifest not found (was the dataset ingested?)")
    return pd.read_csv(path)


def split_images(data_dir: str | Path, split: str) -> list[tuple[str, Path, Path]]:
    """``(image, low_path, gt_path)`` for every image of ``split`` in an ingested dataset."""
    data_dir = Path(data_dir)
    m = read_manifest(data_dir)
    m = m[m["split"] == split]
    low = m[m["role"] == "low"].set_index("image")["path"]
    gt = m[m["role"] == "gt"].set_index("image")["path"]
    return [(name, data_dir / low[name], data_dir / gt[name]) for name in sorted(low.index)]
