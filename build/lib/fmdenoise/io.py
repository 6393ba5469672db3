"""Atomic file output and validated TIFF input/output.

Every file the workflow produces goes through :func:`atomic_path` or :func:`atomic_dir`: the
content is written under a temporary name in the same folder and renamed into place only when
complete, so a killed job never leaves a file that looks finished. The next writer of the same
output removes temporaries a killed one left; a full disk is one :class:`DiskFullError`.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from fmdenoise.errors import FmdenoiseError, ImageError

PathLike = str | os.PathLike[str]


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")


def _prepare_folder(final: Path) -> None:
    """Create ``final``'s folder and remove temporaries of ``final`` left by a killed writer
    (SIGKILL skips cleanup). Only one job writes a given output, so they are stale."""
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.parent.is_dir():
        for stale in final.parent.glob(f".{glob.escape(final.name)}.tmp-*"):
            if stale.is_dir() and not stale.is_symlink():
                shutil.rmtree(stale, ignore_errors=True)
            else:
                stale.unlink(missing_ok=True)


#: errno values that mean "the disk (or quota) is full"
_DISK_FULL = {errno.ENOSPC, errno.EDQUOT}


class DiskFullError(FmdenoiseError):
    """No space left while writing an output (nothing was left under its final name)."""


def _is_disk_full(exc: OSError) -> bool:
    """ENOSPC/EDQUOT, or a short write without errno (numpy's ``tofile``, used by tifffile,
    reports a full disk as "N requested and M written")."""
    return exc.errno in _DISK_FULL or (
        exc.errno is None and "requested and" in str(exc) and "written" in str(exc)
    )


@contextlib.contextmanager
def _disk_full_named(final: Path) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        if _is_disk_full(exc):
            raise DiskFullError(
                f"{final}: no space left on device while writing it ({exc.strerror or exc}); "
                "nothing was written under this name. Free space (or move 'results'), rerun."
            ) from exc
        raise


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` if the block succeeds.

    On any exception the temporary file is removed and ``path`` is left untouched.
    """
    final = Path(path)
    tmp = _tmp_name(final)
    try:
        with _disk_full_named(final):
            _prepare_folder(final)
            yield tmp
            os.replace(tmp, final)
    finally:
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            tmp.unlink()


@contextlib.contextmanager
def atomic_dir(path: PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; it replaces ``path`` if the block succeeds."""
    final = Path(path)
    tmp = _tmp_name(final)
    try:
        with _disk_full_named(final):
            _prepare_folder(final)
            tmp.mkdir()
            yield tmp
        if final.exists():
            old = _tmp_name(final)
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_text(path: PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def save_npy(path: PathLike, array: np.ndarray) -> None:
    """Save ``array`` as ``.npy`` atomically (loadable with ``mmap_mode='r'``)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, array)


def sha256_file(path: PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def write_tiff(path: PathLike, image: np.ndarray, **kwargs: Any) -> None:
    """Write a float32 grayscale image (or stack of planes) as TIFF atomically."""
    kwargs.setdefault("photometric", "minisblack")
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, np.ascontiguousarray(image, dtype=np.float32), **kwargs)


def read_image(path: PathLike) -> np.ndarray:
    """Read a single 2D grayscale image as float32.

    Raises :class:`ImageError` naming the file when it is missing, not a TIFF, truncated, RGB,
    a stack, or of a non-numeric pixel type.
    """
    n = tiff_page_count(path)
    if n != 1:
        raise ImageError(f"{path}: expected one 2D image, found a stack of {n} planes")
    return read_tiff_page(path, 0)


def _as_float_plane(path: Path, plane: np.ndarray) -> np.ndarray:
    if plane.dtype.kind not in "uif":
        raise ImageError(f"{path}: unsupported pixel type {plane.dtype}")
    return np.asarray(plane, dtype=np.float32)


def tiff_page_count(path: PathLike) -> int:
    """Number of 2D planes in the first series of a TIFF (1 for a plain 2D image)."""
    p = Path(path)
    if not p.is_file():
        raise ImageError(f"{p}: image file not found")
    try:
        with tifffile.TiffFile(p) as tif:
            series = tif.series[0]
            shape, axes = series.shape, series.axes
    except Exception as exc:
        raise ImageError(f"{p}: not a readable TIFF ({type(exc).__name__}: {exc})") from exc
    if "S" in axes:
        raise ImageError(f"{p}: RGB/multi-sample image (axes {axes}); expected grayscale")
    if len(shape) == 2:
        return 1
    if len(shape) == 3:
        return int(shape[0])
    raise ImageError(f"{p}: expected 2D images or a stack of them, got shape {shape}")


def read_tiff_page(path: PathLike, index: int) -> np.ndarray:
    """Read plane ``index`` of a TIFF stack as float32 without loading the other planes."""
    p = Path(path)
    n = tiff_page_count(p)
    if not 0 <= index < n:
        raise ImageError(f"{p}: plane {index} requested, file has {n}")
    try:
        with tifffile.TiffFile(p) as tif:
            series = tif.series[0]
            plane = series.asarray() if n == 1 else series.asarray(key=index)
    except Exception as exc:
        raise ImageError(f"{p}: plane {index} unreadable ({type(exc).__name__}: {exc})") from exc
    if plane.ndim == 3 and plane.shape[0] == 1:
        plane = plane[0]
    return _as_float_plane(p, plane)
