"""Denoise a user's own TIFF images with a trained or published model (``fmdenoise denoise``).

A MODEL is one of:

- a run folder of the study (``results/<study>/runs/.../seed0``, holding ``model.pt`` and
  ``run.json``: its noise-level setting is used);
- a selection file (``results/<study>/selected/<model>/<dataset>.json``: the run it selected);
- a project checkpoint (``pretrained/<model>.pt``, ``model.pt``);
- a published checkpoint (``drunet_gray.pth``, ``gaussian_gray_denoising_blind.pth``,
  ``gau_gray_25.pth``) together with ``arch`` (its published grayscale configuration).

Images: 2D TIFFs (``YX``) and 3D stacks (one leading axis: Z, T, C, ... ; processed plane by
plane, each plane normalised by its own percentiles as in training). Output is float32 in the
input's intensity scale, written atomically under the input's file name, with its pixel size
kept: ImageJ metadata (spacing, unit, axes) and resolution tags, or OME-XML physical sizes.
An input file is never overwritten, and existing outputs only with ``overwrite``.
"""

from __future__ import annotations

import dataclasses
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
from tqdm import tqdm

from fmdenoise import device as dev
from fmdenoise.errors import FmdenoiseError
from fmdenoise.inference import denoise_array
from fmdenoise.io import atomic_path
from fmdenoise.models import GRAY_DEFAULTS
from fmdenoise.models.checkpoints import load_model
from fmdenoise.models.wrapper import Denoiser

TIFF_SUFFIXES = (".tif", ".tiff")
#: Published checkpoint container of each architecture.
PUBLISHED_FORMAT = {"drunet": "kair", "restormer": "restormer", "kbnet": "kbnet"}


@dataclasses.dataclass
class ModelSource:
    """Where a model came from and how to run it."""

    checkpoint: Path
    arch: str | None = None  # for published checkpoints
    fmt: str = "fmdenoise"
    noise_level: dict[str, Any] | None = None
    run: Path | None = None


def _find_run(run: str, selection: Path) -> Path:
    """A run path as written in a selection file: relative to the workflow's folder, which is
    the current folder or an ancestor of the selection file."""
    for base in (Path.cwd(), *selection.resolve().parents):
        if (base / run / "model.pt").is_file():
            return base / run
    raise FmdenoiseError(f"{selection}: its selected run {run} (model.pt) was not found")


def resolve_model(spec: str | Path, arch: str | None = None) -> ModelSource:
    """Interpret the MODEL argument (see the module docstring)."""
    path = Path(spec)
    if path.is_file() and path.suffix == ".json":
        try:
            run = json.loads(path.read_text())["selected"]["run"]
        except (ValueError, KeyError, TypeError) as exc:
            raise FmdenoiseError(f"{path}: not a selection file ({exc})") from exc
        path = _find_run(run, path)
    if path.is_dir():
        if not (path / "model.pt").is_file():
            raise FmdenoiseError(f"{path}: a run folder must hold model.pt")
        noise = None
        if (path / "run.json").is_file():
            run_info = json.loads((path / "run.json").read_text())
            noise = run_info.get("config", {}).get("model", {}).get("noise_level")
        return ModelSource(path / "model.pt", noise_level=noise, run=path)
    if path.is_file():
        if arch is None:
            return ModelSource(path)
        if arch not in PUBLISHED_FORMAT:
            raise FmdenoiseError(f"--arch {arch!r}: one of {', '.join(PUBLISHED_FORMAT)}")
        return ModelSource(path, arch=arch, fmt=PUBLISHED_FORMAT[arch])
    raise FmdenoiseError(
        f"MODEL {spec}: not found (give a run folder, a selected/<model>/<dataset>.json file, "
        "or a checkpoint file)"
    )


def load_denoiser(source: ModelSource) -> tuple[Denoiser, dict[str, Any]]:
    """The :class:`Denoiser` for ``source`` (on CPU, eval mode) and its metadata."""
    kwargs = GRAY_DEFAULTS[source.arch] if source.arch else None
    net, meta = load_model(source.checkpoint, source.arch, kwargs, fmt=source.fmt)
    model = Denoiser(net, meta["arch"], meta["kwargs"], source.noise_level).eval()
    return model, meta


def collect_inputs(inputs: Sequence[str | Path]) -> list[Path]:
    """TIFF files named directly or found (not recursively) in the given folders."""
    files: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(p for p in item.iterdir() if p.suffix.lower() in TIFF_SUFFIXES)
            if not found:
                raise FmdenoiseError(f"{item}: folder holds no .tif/.tiff file")
            files += found
        elif item.is_file():
            if item.suffix.lower() not in TIFF_SUFFIXES:
                raise FmdenoiseError(f"{item}: unsupported input (only .tif/.tiff files)")
            files.append(item)
        else:
            raise FmdenoiseError(f"{item}: no such file or folder")
    names = [f.name for f in files]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise FmdenoiseError(f"two inputs would write the same output name: {duplicates}")
    return files


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
            page = tf.pages[0]
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


def output_path(src: Path, out_dir: Path, overwrite: bool) -> Path:
    """``out_dir/<src.name>``; refuses to write over ``src`` itself, or an existing output
    unless ``overwrite``."""
    out = out_dir / src.name
    if out.exists() and out.resolve() == src.resolve():
        raise FmdenoiseError(f"{src}: the output would overwrite the input; choose another -o")
    if out.exists() and not overwrite:
        raise FmdenoiseError(f"{out}: exists (use --overwrite to replace it)")
    return out


def denoise_files(
    model_spec: str | Path,
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    *,
    arch: str | None = None,
    device: str = "auto",
    tile: int | None = 512,
    overlap: int = 64,
    low: float = 0.1,
    high: float = 99.9,
    overwrite: bool = False,
    progress: bool = True,
) -> list[Path]:
    """Denoise every input; returns the written paths. Everything is checked (model, inputs,
    output names) before the first image is processed."""
    files = collect_inputs(inputs)
    out_dir = Path(out_dir)
    outs = [output_path(f, out_dir, overwrite) for f in files]
    model, _ = load_denoiser(resolve_model(model_spec, arch))
    device_t = dev.resolve(device)
    model = dev.prepare(model, device_t).eval()
    images = [read_tiff(f) for f in files]  # fail on a bad file before writing anything
    total = sum(1 if im.data.ndim == 2 else im.data.shape[0] for im in images)
    with tqdm(total=total, unit="plane", disable=not progress, desc="denoise") as bar:
        for image, out in zip(images, outs, strict=True):
            planes: Iterable[np.ndarray] = [image.data] if image.data.ndim == 2 else image.data
            result = []
            for plane in planes:
                result.append(
                    denoise_array(
                        model,
                        plane,
                        low=low,
                        high=high,
                        tile=tile,
                        overlap=overlap,
                        device=device_t,
                    )
                )
                bar.update(1)
            data = result[0] if image.data.ndim == 2 else np.stack(result)
            write_like(out, image, data)
    return outs


__all__ = [
    "ModelSource",
    "TiffImage",
    "collect_inputs",
    "denoise_files",
    "load_denoiser",
    "read_tiff",
    "resolve_model",
    "write_like",
]
