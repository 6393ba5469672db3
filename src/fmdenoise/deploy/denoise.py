"""Denoise a user's own TIFF images with a trained or published model (``fmdenoise denoise``).

A MODEL (resolved by :mod:`fmdenoise.deploy.model_source`) is one of:

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

A model the study trained is applied the way the study evaluated it: tile or whole image,
overlap, normalisation percentiles and noise-level input come from its record
(:func:`fmdenoise.deploy.model_source.how_to_apply`); an option given explicitly overrides
the record, and the log says so.

A model trained by the study records the noise range of its training images
(:mod:`fmdenoise.data.noise`); each input plane's noise is estimated the same way and a warning
with the numbers is logged when it lies outside that range (the output is written anyway).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from tqdm import tqdm

from fmdenoise import device as dev
from fmdenoise.data.noise import image_noise, outside_range
from fmdenoise.deploy.model_source import how_to_apply, load_denoiser, resolve_model
from fmdenoise.deploy.tiff_metadata import read_tiff, write_like
from fmdenoise.errors import FmdenoiseError
from fmdenoise.evaluate.inference import denoise_array

log = logging.getLogger(__name__)

TIFF_SUFFIXES = (".tif", ".tiff")
#: an option left to the model's record (:func:`~fmdenoise.deploy.model_source.how_to_apply`)
RECORDED: Literal["recorded"] = "recorded"


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
    tile: int | Literal["recorded"] | None = RECORDED,
    overlap: int | Literal["recorded"] = RECORDED,
    low: float | Literal["recorded"] = RECORDED,
    high: float | Literal["recorded"] = RECORDED,
    overwrite: bool = False,
    progress: bool = True,
) -> list[Path]:
    """Denoise every input; returns the written paths. Everything is checked (model, inputs,
    output names) before the first image is processed. ``tile`` (None: whole image),
    ``overlap``, ``low`` and ``high`` (the normalisation percentiles): as the study evaluated
    the model unless given."""
    files = collect_inputs(inputs)
    out_dir = Path(out_dir)
    outs = [output_path(f, out_dir, overwrite) for f in files]
    source = resolve_model(model_spec, arch)
    model, meta = load_denoiser(source)
    given = {"tile": tile, "overlap": overlap, "low_percentile": low, "high_percentile": high}
    how = how_to_apply(source, {k: v for k, v in given.items() if v != RECORDED})
    tile, overlap = how.tile, how.overlap
    low, high = how.low_percentile, how.high_percentile
    trained = meta.get("training_noise")
    device_t = dev.resolve(device)
    model = dev.prepare(model, device_t).eval()
    images = [read_tiff(f) for f in files]  # fail on a bad file before writing anything
    total = sum(1 if im.data.ndim == 2 else im.data.shape[0] for im in images)
    with tqdm(total=total, unit="plane", disable=not progress, desc="denoise") as bar:
        for src, image, out in zip(files, images, outs, strict=True):
            planes: Iterable[np.ndarray] = [image.data] if image.data.ndim == 2 else image.data
            result = []
            for i, plane in enumerate(planes):
                warning = outside_range(image_noise(plane, low, high), trained)
                if warning:
                    where = src if image.data.ndim == 2 else f"{src} plane {i}"
                    log.warning("%s: %s", where, warning)
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
