"""TIFF images read and written with the metadata a microscopist expects to keep.

2D images (``YX``) and 3D stacks (one leading axis); ImageJ metadata (spacing, unit, axes),
OME-XML physical sizes and the resolution tags survive a round trip. One clear error for
anything that is not a finite grayscale 2D/3D image.
"""

from __future__ import annotations

import dataclasses
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from fmdenoise.errors import FmdenoiseError
from fmdenoise.io import atomic_path


@dataclasses.dataclass
class TiffImage:
    """Pixels (``YX`` or ``?YX``) and the metadata kept on output."""

    data: np.ndarray
    axes: str
    imagej: dict[str, Any] | None = None
    ome: dict[str, Any] | None = None
    resolution: tuple[Any, Any] | None = None
    resolution_unit: Any = None


def _ome_physical_sizes(xml: str) -> dict[str, Any]:
    """PhysicalSize{X,Y,Z} and their units from the first OME ``Pixels`` element."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return {}
    pixels = next((el for el in root.iter() if el.tag.endswith("}Pixels")), None)
    if pixels is None:
        return {}
    out: dict[str, Any] = {}
    for key in ("PhysicalSizeX", "PhysicalSizeY", "PhysicalSizeZ"):
        if key in pixels.attrib:
            out[key] = float(pixels.attrib[key])
            if f"{key}Unit" in pixels.attrib:
                out[f"{key}Unit"] = pixels.attrib[f"{key}Unit"]
    return out


def read_tiff(path: str | Path) -> TiffImage:
    """Read a 2D image or 3D stack with its metadata; one clear error for anything else."""
    path = Path(path)
    try:
        with tifffile.TiffFile(path) as tf:
            series = tf.series[0]
            axes = series.axes
            data = series.asarray()
            page = tf.pages.first  # a TiffPage (the first page is never a TiffFrame)
            tags = page.tags
            resolution = None
            if "XResolution" in tags and "YResolution" in tags:
                resolution = (tags["XResolution"].value, tags["YResolution"].value)
            unit = tags["ResolutionUnit"].value if "ResolutionUnit" in tags else None
            imagej = dict(tf.imagej_metadata) if tf.is_imagej and tf.imagej_metadata else None
            ome = _ome_physical_sizes(tf.ome_metadata) if tf.is_ome and tf.ome_metadata else None
    except (tifffile.TiffFileError, OSError, ValueError, IndexError) as exc:
        raise FmdenoiseError(f"{path}: not a readable TIFF ({exc})") from exc
    if "S" in axes or data.ndim not in (2, 3):
        raise FmdenoiseError(
            f"{path}: axes {axes!r} shape {data.shape}; expected a 2D grayscale image (YX) or a "
            "3D stack (e.g. ZYX), not RGB or higher-dimensional data (split it first)"
        )
    if not (np.issubdtype(data.dtype, np.integer) or np.issubdtype(data.dtype, np.floating)):
        raise FmdenoiseError(f"{path}: unsupported pixel type {data.dtype}")
    data = data.astype(np.float32, copy=False)
    if not np.isfinite(data).all():
        raise FmdenoiseError(f"{path}: contains NaN or infinite values")
    return TiffImage(data, axes, imagej, ome, resolution, unit)


def write_like(path: str | Path, image: TiffImage, data: np.ndarray) -> None:
    """Write float32 ``data`` atomically with ``image``'s metadata (ImageJ, OME or plain)."""
    data = np.ascontiguousarray(data, dtype=np.float32)
    kwargs: dict[str, Any] = {}
    if image.resolution is not None:
        kwargs["resolution"] = image.resolution
        if image.resolution_unit is not None:
            kwargs["resolutionunit"] = image.resolution_unit
    with atomic_path(path) as tmp:
        if image.imagej is not None:
            keep = {k: v for k, v in image.imagej.items() if k in ("spacing", "unit", "finterval")}
            # ImageJ hyperstack axes: the leading axis of a 3D stack becomes Z, T or C
            axes = image.axes if image.axes[0] in "ZTC" or data.ndim == 2 else "Z" + image.axes[1:]
            tifffile.imwrite(tmp, data, imagej=True, metadata={"axes": axes, **keep}, **kwargs)
        elif image.ome is not None:
            axes = re.sub("[^TCZYX]", "Z", image.axes)
            tifffile.imwrite(
                tmp,
                data,
                ome=True,
                photometric="minisblack",
                metadata={"axes": axes, **image.ome},
                **kwargs,
            )
        else:
            tifffile.imwrite(tmp, data, photometric="minisblack", **kwargs)
