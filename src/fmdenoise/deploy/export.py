"""Export a model as a BioImage Model Zoo package (bioimage.io model description 0.5).

The package (a ``.zip``) holds:

- ``weights.pt``: TorchScript of the :class:`~fmdenoise.models.wrapper.Denoiser` (network, plus
  DRUNet's noise-level estimation), traced on the test input. Its input is one grayscale image
  ``(batch, channel=1, y, x)`` whose sides are multiples of 16 (declared in the description, so
  that consumers tile accordingly and no padding is traced).
- preprocessing ``scale_range``: per sample, the percentiles the study trained and evaluated
  the model with (its record, :func:`fmdenoise.deploy.model_source.how_to_apply`; 0.1/99.9
  without one) map to 0/1. The README says whether the study applied it to whole images or
  to tiles (side and overlap), for consumers that tile. The output stays on that normalised
  scale (bioimage.io has no "undo the input's normalisation" step); ``fmdenoise denoise`` maps
  it back to the input's intensities.
- ``test_input.npy`` / ``test_output.npy``: a raw test image and the model's output for it
  (preprocessing included), ``cover.png``, and ``README.md`` with provenance.

The description is built and validated with ``bioimageio.spec`` before anything is written;
the zip appears under its final name only when complete.
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fmdenoise import __version__
from fmdenoise.data.noise import describe_range
from fmdenoise.deploy.model_source import how_to_apply, load_denoiser, resolve_model
from fmdenoise.deploy.tiff_metadata import read_tiff
from fmdenoise.errors import FmdenoiseError
from fmdenoise.evaluate.figures import save_cover
from fmdenoise.io import atomic_path

STEP = 16  # input sides: multiples of this (covers every architecture's down-sampling)
MIN_SIZE = 64
TEST_SIZE = 256
EPS = 1e-6

CITATIONS = {
    "drunet": (
        "Zhang et al. 2021, Plug-and-Play Image Restoration with Deep Denoiser Prior",
        "10.1109/TPAMI.2021.3088914",
    ),
    "restormer": (
        "Zamir et al. 2022, Restormer: Efficient Transformer for High-Resolution Image Restoration",
        "10.1109/CVPR52688.2022.00564",
    ),
    "kbnet": (
        "Zhang et al. 2023, KBNet: Kernel Basis Network for Image Restoration",
        "10.48550/arXiv.2303.02881",
    ),
    "care_unet": (
        "Weigert et al. 2018, Content-aware image restoration (CARE)",
        "10.1038/s41592-018-0216-7",
    ),
}
HAGEN = (
    "Hagen et al. 2021, Fluorescence microscopy datasets for training deep neural networks, "
    "GigaScience",
    "10.1093/gigascience/giab032",
)


def make_test_input(path: str | Path | None, size: int = TEST_SIZE, seed: int = 0) -> np.ndarray:
    """A 2D float32 test input with sides multiple of :data:`STEP`: the centre crop of the
    first plane of ``path``, or (no path) a synthetic noisy fluorescence-like image."""
    if path is not None:
        image = read_tiff(path).data
        image = image if image.ndim == 2 else image[0]
        h, w = (min(size, s) // STEP * STEP for s in image.shape)
        if h < MIN_SIZE or w < MIN_SIZE:
            raise FmdenoiseError(f"{path}: test image smaller than {MIN_SIZE}x{MIN_SIZE}")
        top, left = (image.shape[0] - h) // 2, (image.shape[1] - w) // 2
        return np.ascontiguousarray(image[top : top + h, left : left + w], np.float32)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    clean = np.zeros((size, size), np.float32)
    for cy, cx, r in rng.uniform([0, 0, 6], [size, size, 20], size=(12, 3)):
        clean += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r**2))
    photons = rng.poisson(20 * clean + 2).astype(np.float32)
    return photons + rng.normal(100, 2, photons.shape).astype(np.float32)


def preprocess(image: np.ndarray, low: float, high: float) -> np.ndarray:
    """The package's ``scale_range`` preprocessing, exactly as bioimage.io defines it."""
    lo, hi = np.percentile(image, [low, high])
    return ((image - lo) / (hi - lo + EPS)).astype(np.float32)


def export_bioimageio(
    model_spec: str | Path,
    output: str | Path,
    *,
    arch: str | None = None,
    name: str | None = None,
    author: str = "fmdenoise user",
    test_image: str | Path | None = None,
    low: float | None = None,
    high: float | None = None,
) -> Path:
    """Write the package to ``output`` (.zip) and return its path. ``low``/``high``: the
    normalisation percentiles when not the model's recorded ones."""
    from bioimageio.spec import save_bioimageio_package
    from bioimageio.spec.model import v0_5 as bio
    from pydantic import ValidationError

    output = Path(output)
    if output.suffix != ".zip":
        raise FmdenoiseError(f"{output}: the package name must end in .zip")
    source = resolve_model(model_spec, arch)
    model, meta = load_denoiser(source)
    given = {"low_percentile": low, "high_percentile": high}
    how = how_to_apply(source, {k: v for k, v in given.items() if v is not None})
    low, high = how.low_percentile, how.high_percentile
    model = model.float().eval()
    raw = make_test_input(test_image)
    x = torch.from_numpy(preprocess(raw, low, high))[None, None]
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, x, check_trace=False)  # deprecated, still what
        y = traced(x).numpy()  # bioimage.io consumers (deepImageJ, bioimageio.core) read
    arch_name = meta["arch"]
    name = name or f"fmdenoise {arch_name} denoiser"
    with tempfile.TemporaryDirectory() as tmp_str:
        tmp = Path(tmp_str)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.jit.save(traced, str(tmp / "weights.pt"))
        np.save(tmp / "test_input.npy", raw[None, None])
        np.save(tmp / "test_output.npy", y)
        save_cover(raw, y[0, 0], tmp / "cover.png")
        (tmp / "README.md").write_text(_readme(name, arch_name, source, meta, how))
        try:
            descr = _describe(bio, tmp, name, arch_name, author, low, high)
        except ValidationError as exc:
            raise FmdenoiseError(f"{output}: bioimage.io description invalid:\n{exc}") from exc
        save_bioimageio_package(descr, output_path=tmp / "package.zip")
        summary = validate_package(tmp / "package.zip")
        if summary.status != "valid-format" and summary.status != "passed":
            raise FmdenoiseError(f"{output}: bioimage.io validation failed:\n{summary}")
        with atomic_path(output) as final:
            shutil.copyfile(tmp / "package.zip", final)
    return output


def validate_package(path: str | Path) -> Any:
    """The ``bioimageio.spec`` validation summary of a package (files checked, offline)."""
    from bioimageio.spec import load_description

    descr = load_description(path, perform_io_checks=True)
    return descr.validation_summary


def _image_axes(bio: Any, space_axis: Any) -> list[Any]:
    """(batch, channel "gray", y, x) with ``space_axis(axis_id)`` for y and x."""
    return [
        bio.BatchAxis(),
        bio.ChannelAxis(channel_names=[bio.Identifier("gray")]),
        space_axis(bio.AxisId("y")),
        space_axis(bio.AxisId("x")),
    ]


def _describe(
    bio: Any, tmp: Path, name: str, arch_name: str, author: str, low: float, high: float
) -> Any:
    """The bioimage.io ``ModelDescr`` of the files written in ``tmp``."""
    text, doi = CITATIONS[arch_name]
    space = bio.ParameterizedSize(min=MIN_SIZE, step=STEP)
    return bio.ModelDescr(
        name=name,
        description=f"{arch_name} fine-tuned on paired fluorescence microscopy images "
        "(fmdenoise): noisy in, denoised out, on the percentile-normalised scale.",
        authors=[bio.Author(name=author)],
        cite=[bio.CiteEntry(text=text, doi=doi), bio.CiteEntry(text=HAGEN[0], doi=HAGEN[1])],
        license="MIT",
        documentation=bio.FileDescr(source=tmp / "README.md"),
        covers=[bio.FileDescr(source=tmp / "cover.png")],
        tags=["denoising", "fluorescence-light-microscopy", "2d", "pytorch", arch_name],
        inputs=[
            bio.InputTensorDescr(
                id=bio.TensorId("input"),
                description="noisy image, any intensity scale",
                axes=_image_axes(bio, lambda axis: bio.SpaceInputAxis(id=axis, size=space)),
                test_tensor=bio.FileDescr(source=tmp / "test_input.npy"),
                data=bio.IntervalOrRatioDataDescr(type="float32"),
                preprocessing=[
                    bio.ScaleRangeDescr(
                        kwargs=bio.ScaleRangeKwargs(
                            axes=[bio.AxisId("y"), bio.AxisId("x")],
                            min_percentile=low,
                            max_percentile=high,
                            eps=EPS,
                        )
                    )
                ],
            )
        ],
        outputs=[
            bio.OutputTensorDescr(
                id=bio.TensorId("output"),
                description="denoised image on the input's percentile-normalised scale",
                axes=_image_axes(
                    bio,
                    lambda axis: bio.SpaceOutputAxis(
                        id=axis,
                        size=bio.SizeReference(tensor_id=bio.TensorId("input"), axis_id=axis),
                    ),
                ),
                test_tensor=bio.FileDescr(source=tmp / "test_output.npy"),
                data=bio.IntervalOrRatioDataDescr(type="float32"),
            )
        ],
        weights=bio.WeightsDescr(
            torchscript=bio.TorchscriptWeightsDescr(
                source=tmp / "weights.pt",
                pytorch_version=bio.Version(torch.__version__.split("+")[0]),
            )
        ),
        version="0.1.0",
    )


def _readme(name: str, arch: str, source: Any, meta: dict[str, Any], how: Any) -> str:
    low, high = how.low_percentile, how.high_percentile
    applied = (
        "whole images at once (its attention is global: tiles change its output)"
        if how.tile is None
        else f"tiles of {how.tile} px overlapping by {how.overlap} px, blended"
    )
    return (
        f"# {name}\n\n"
        f"Architecture: {arch} ({meta.get('kwargs')}). Exported by fmdenoise {__version__} from "
        f"`{source.checkpoint}`.\n\n"
        f"Input: one grayscale 2D image, sides multiples of {STEP} (at least {MIN_SIZE}); "
        f"preprocessing maps its {low}/{high} percentiles to 0/1. Output: the denoised image "
        "on that normalised scale (multiply by the percentile span and add the low percentile "
        "to return to the input's units; `fmdenoise denoise` does this).\n\n"
        f"The study evaluated it on {applied}; apply it the same way.\n\n"
        "Weights: TorchScript, traced with torch "
        f"{torch.__version__}. Training data: paired low/high exposure fluorescence images "
        "(Hagen et al. 2021) or the study's own data; see the run's run.json for provenance.\n\n"
        "## Noise range\n\n"
        f"{describe_range(meta.get('training_noise'))} Outside that range the output may not "
        "be reliable: the model has not seen such noise.\n\n"
        "## Validation\n\n"
        "Model selection used the validation split only; test-set PSNR/SSIM (percentile-"
        "normalised ground truth, affine-fitted prediction) are in the study's "
        "`tables/main.md`. The package's test output was produced by these weights from its "
        "test input, preprocessing included.\n"
    )
