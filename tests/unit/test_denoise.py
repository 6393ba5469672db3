"""``fmdenoise denoise``: the user's own TIFFs in, denoised float32 TIFFs with metadata out."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import tifffile
import torch

from fmdenoise import device as dev
from fmdenoise.cli import main
from fmdenoise.deploy.denoise import denoise_files
from fmdenoise.deploy.model_source import load_denoiser, resolve_model
from fmdenoise.deploy.tiff_metadata import read_tiff
from fmdenoise.errors import FmdenoiseError
from fmdenoise.evaluate.inference import denoise_array
from fmdenoise.evaluate.metrics import evaluate
from fmdenoise.models import build
from fmdenoise.models.checkpoints import save_model

from ..helpers import ROOT

SMALL_DRUNET = {"in_nc": 2, "out_nc": 1, "nc": [8, 16, 32, 64], "nb": 1}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "drunet.pt"
    save_model(path, build("drunet", **SMALL_DRUNET), "drunet", SMALL_DRUNET)
    return path


@pytest.fixture(scope="module")
def demo_trained():
    """The demo's shipped DRUNet, pretrained on natural images (demo/pretrained/)."""
    return ROOT / "demo" / "pretrained" / "drunet.pt"


def image(shape, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.poisson(50, shape) + 100).astype(np.uint16)


def reference(checkpoint, img, tile, overlap):
    model, _ = load_denoiser(resolve_model(checkpoint))
    model = dev.prepare(model, torch.device("cpu")).eval()  # as the command does
    return denoise_array(model, img.astype(np.float32), tile=tile, overlap=overlap)


def test_2d_imagej_tiff_keeps_metadata_and_equals_library(tmp_path, checkpoint):
    img = image((123, 77))
    src = tmp_path / "in" / "cells.tif"
    src.parent.mkdir()
    tifffile.imwrite(
        src,
        img,
        imagej=True,
        resolution=(1 / 0.65, 1 / 0.65),
        metadata={"unit": "micron", "axes": "YX"},
    )
    (out,) = denoise_files(checkpoint, [src], tmp_path / "out", tile=64, overlap=16, progress=False)
    assert out == tmp_path / "out" / "cells.tif"
    with tifffile.TiffFile(out) as tf:
        data = tf.asarray()
        assert tf.is_imagej and tf.imagej_metadata["unit"] == "micron"
        xres = tf.pages[0].tags["XResolution"].value
    assert data.dtype == np.float32 and data.shape == (123, 77)
    assert xres[0] / xres[1] == pytest.approx(1 / 0.65, rel=1e-6)
    np.testing.assert_array_equal(data, reference(checkpoint, img, 64, 16))
    np.testing.assert_array_equal(tifffile.imread(src), img)  # input untouched


def test_3d_stack_plane_by_plane(tmp_path, checkpoint):
    stack = np.stack([image((64, 80), seed=s) for s in range(3)])
    src = tmp_path / "stack.tif"
    tifffile.imwrite(
        src, stack, imagej=True, metadata={"axes": "ZYX", "spacing": 2.5, "unit": "um"}
    )
    (out,) = denoise_files(checkpoint, [src], tmp_path / "out", tile=None, progress=False)
    with tifffile.TiffFile(out) as tf:
        data = tf.asarray()
        assert tf.series[0].axes == "ZYX" and tf.imagej_metadata["spacing"] == 2.5
    assert data.shape == (3, 64, 80)
    for z in range(3):
        np.testing.assert_array_equal(data[z], reference(checkpoint, stack[z], None, 64))


def test_ome_tiff_keeps_physical_size(tmp_path, checkpoint):
    src = tmp_path / "a.ome.tif"
    tifffile.imwrite(
        src,
        image((64, 64)),
        ome=True,
        metadata={"axes": "YX", "PhysicalSizeX": 0.1, "PhysicalSizeY": 0.2},
    )
    (out,) = denoise_files(checkpoint, [src], tmp_path / "out", progress=False)
    assert out.name == "a.ome.tif"
    assert read_tiff(out).ome == {"PhysicalSizeX": 0.1, "PhysicalSizeY": 0.2}


def test_folder_input_and_cli(tmp_path, checkpoint, capsys):
    for i in range(2):
        tifffile.imwrite(tmp_path / f"img{i}.tiff", image((40, 48), seed=i))
    (tmp_path / "notes.txt").write_text("not an image")
    rc = main(
        [
            "denoise",
            str(checkpoint),
            str(tmp_path),
            "-o",
            str(tmp_path / "out"),
            "--device",
            "cpu",
            "--tile",
            "0",
            "--no-progress",
        ]
    )
    assert rc == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["img0.tiff", "img1.tiff"]
    assert str(tmp_path / "out" / "img0.tiff") in capsys.readouterr().out
    # existing outputs are kept unless --overwrite; the input folder itself is refused
    before = (tmp_path / "out" / "img0.tiff").read_bytes()
    args = ["denoise", str(checkpoint), str(tmp_path), "--no-progress"]
    assert main([*args, "-o", str(tmp_path / "out")]) == 2
    assert "exists (use --overwrite" in capsys.readouterr().err
    assert (tmp_path / "out" / "img0.tiff").read_bytes() == before
    assert main([*args, "-o", str(tmp_path / "out"), "--overwrite"]) == 0
    assert main([*args, "-o", str(tmp_path), "--overwrite"]) == 2
    assert "would overwrite the input" in capsys.readouterr().err


def test_model_forms(tmp_path, checkpoint):
    """A run folder (with run.json's noise level), a selection file, a published .pth."""
    run = tmp_path / "results" / "runs" / "drunet" / "d" / "seed0"
    run.mkdir(parents=True)
    (run / "model.pt").write_bytes(checkpoint.read_bytes())
    cfg = {"config": {"model": {"noise_level": {"mode": "fixed", "sigma": 0.05}}}}
    (run / "run.json").write_text(json.dumps(cfg))
    src = resolve_model(run)
    assert src.checkpoint == run / "model.pt" and src.noise_level["mode"] == "fixed"
    sel = tmp_path / "results" / "selected" / "drunet" / "d.json"
    sel.parent.mkdir(parents=True)
    sel.write_text(json.dumps({"selected": {"run": "results/runs/drunet/d/seed0"}}))
    assert resolve_model(sel).run == run  # found relative to an ancestor of the file
    model, _ = load_denoiser(resolve_model(sel))
    assert model.noise_mode == "fixed"
    net = build("drunet", in_nc=2, out_nc=1, nc=[64, 128, 256, 512], nb=4)
    torch.save(net.state_dict(), tmp_path / "drunet_gray.pth")
    model, meta = load_denoiser(resolve_model(tmp_path / "drunet_gray.pth", arch="drunet"))
    assert meta["arch"] == "drunet" and model.net.state_dict().keys() == net.state_dict().keys()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: tifffile.imwrite(p, np.zeros((8, 8, 3), np.uint8), photometric="rgb"), "RGB"),
        (lambda p: tifffile.imwrite(p, np.zeros((2, 2, 8, 8), np.float32)), "higher-dimensional"),
        (lambda p: p.write_bytes(b"II*\x00garbage"), "not a readable TIFF"),
        (lambda p: tifffile.imwrite(p, np.full((8, 8), np.nan, np.float32)), "NaN"),
    ],
)
def test_bad_images_fail_before_any_output(tmp_path, checkpoint, make, message):
    good = tmp_path / "a.tif"
    tifffile.imwrite(good, image((32, 32)))
    bad = tmp_path / "b.tif"
    make(bad)
    with pytest.raises(FmdenoiseError, match=message) as err:
        denoise_files(checkpoint, [good, bad], tmp_path / "out", progress=False)
    assert "b.tif" in str(err.value)
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_bad_arguments(tmp_path, checkpoint, capsys):
    (tmp_path / "x.png").write_bytes(b"png")
    (tmp_path / "empty").mkdir()
    cases = [
        ([str(checkpoint), str(tmp_path / "x.png")], "only .tif/.tiff"),
        ([str(checkpoint), str(tmp_path / "missing.tif")], "no such file"),
        ([str(checkpoint), str(tmp_path / "empty")], "no .tif/.tiff"),
        ([str(tmp_path / "nomodel"), str(tmp_path / "empty")], "no .tif/.tiff"),
    ]
    for args, message in cases:
        assert main(["denoise", *args, "-o", str(tmp_path / "o"), "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("fmdenoise: error:") and message in err, err
    with pytest.raises(FmdenoiseError, match=r"MODEL .*not found"):
        resolve_model(tmp_path / "nomodel")
    tifffile.imwrite(tmp_path / "ok.tif", image((16, 16)))
    assert (
        main(
            [
                "denoise",
                str(tmp_path / "ok.tif"),
                str(tmp_path / "ok.tif"),
                "-o",
                str(tmp_path / "o2"),
            ]
        )
        == 2
    )
    assert "not a PyTorch checkpoint" in capsys.readouterr().err


def test_help_is_complete(capsys):
    for args in (["--help"], ["denoise", "--help"], ["export", "--help"]):
        with pytest.raises(SystemExit) as exit_:
            main(args)
        assert exit_.value.code == 0
    text = capsys.readouterr().out
    for word in (
        "denoise",
        "export",
        "--tile",
        "--overlap",
        "--device",
        "--arch",
        "OUTDIR",
        "OUT.zip",
        "--test-image",
        "check-config",
        "fetch",
    ):
        assert word in text, word


def test_real_microscopy_image_gains_psnr(tmp_path, demo_trained):
    """scikit-image's bundled microscopy image (``cell``: the fluorescence samples cells3d,
    kidney and human_mitosis need a download) with Poisson noise, denoised by the demo-trained
    DRUNet through the CLI: the PSNR (study convention) goes up."""
    from skimage import data

    clean = data.cell().astype(np.float32)[200:456, 150:406]  # the cell, not background
    rng = np.random.default_rng(0)
    photons = 10.0
    noisy = rng.poisson(clean / clean.max() * photons).astype(np.float32)
    tifffile.imwrite(tmp_path / "cell.tif", noisy)
    rc = main(
        [
            "denoise",
            str(demo_trained),
            str(tmp_path / "cell.tif"),
            "-o",
            str(tmp_path / "out"),
            "--no-progress",
            "--tile",
            "128",
            "--overlap",
            "32",
        ]
    )
    assert rc == 0
    denoised = tifffile.imread(tmp_path / "out" / "cell.tif")
    before, after = evaluate(clean, noisy)["psnr"], evaluate(clean, denoised)["psnr"]
    assert after > before + 3.0, (before, after)  # measured: 19.6 -> 25.4 dB


def test_warns_outside_the_training_noise_range(tmp_path, caplog):
    """A model that records the noise range of its training images: an input with 10x the
    training noise gets a warning with the numbers, one from the training distribution none;
    the output is written either way."""
    import logging

    from fmdenoise.data.noise import noise_range

    from .test_noise_range import camera

    rng = np.random.default_rng(0)
    training = [camera(rng, 200) for _ in range(4)]
    path = tmp_path / "trained.pt"
    torch.manual_seed(0)
    save_model(path, build("drunet", **SMALL_DRUNET), "drunet", SMALL_DRUNET,
               training_noise=noise_range(training))  # fmt: skip
    same = camera(np.random.default_rng(5), 200)
    sd = np.sqrt(2.0 * 2.0 * np.median((same - 100) / 2) + 9.0)
    tifffile.imwrite(tmp_path / "same.tif", same.astype(np.float32))
    noisy = same + np.random.default_rng(6).normal(0, 10 * sd, same.shape)
    tifffile.imwrite(tmp_path / "noisy.tif", noisy.astype(np.float32))
    with caplog.at_level(logging.WARNING, logger="fmdenoise.deploy.denoise"):
        outs = denoise_files(path, [tmp_path / "same.tif", tmp_path / "noisy.tif"],
                             tmp_path / "out", tile=None, progress=False)  # fmt: skip
    assert [o.name for o in outs] == ["same.tif", "noisy.tif"] and all(o.exists() for o in outs)
    warned = [r.getMessage() for r in caplog.records if r.name.endswith(".denoise")]
    assert len(warned) == 1 and warned[0].startswith(f"{tmp_path / 'noisy.tif'}: noise level ")
    assert "above the range the model was trained on" in warned[0]
    assert "over 4 training images" in warned[0]


def test_applied_as_the_study_recorded_and_overrides_say_so(tmp_path, checkpoint, caplog):
    """The record (selection file first, then run.json, then model.pt) decides tile, overlap,
    percentiles and noise level; an explicit option overrides it and the log says so; a model
    with no record is applied with the old defaults and a warning. A 2048 px input through a
    model evaluated whole-image is not tiled."""
    import logging

    from fmdenoise.deploy import denoise as denoise_module
    from fmdenoise.deploy.model_source import how_to_apply
    from fmdenoise.settings import DEFAULT_INFERENCE, InferenceSettings

    whole = InferenceSettings(None, 16, 1.0, 99.0, {"mode": "fixed", "sigma": 0.05})
    tiled = InferenceSettings(96, 32, 0.1, 99.9, {"mode": "estimate", "sigma": 0.1})
    run = tmp_path / "results" / "runs" / "drunet" / "d" / "seed0"
    run.mkdir(parents=True)
    net, _ = load_denoiser(resolve_model(checkpoint))
    save_model(run / "model.pt", net.net, "drunet", SMALL_DRUNET, inference=tiled.as_dict())
    (run / "run.json").write_text(json.dumps({"inference": whole.as_dict()}))
    sel = tmp_path / "results" / "selected" / "drunet" / "d.json"
    sel.parent.mkdir(parents=True)
    selection = {"selected": {"run": "results/runs/drunet/d/seed0"}, "inference": tiled.as_dict()}
    sel.write_text(json.dumps(selection))

    def applied(spec, **overrides):
        source = resolve_model(spec)
        model, _ = load_denoiser(source)
        return how_to_apply(source, overrides), model

    how, model = applied(sel)
    assert how == tiled and model.noise_mode == "estimate"  # the selection's record
    how, model = applied(run)
    assert how == whole and model.noise_mode == "fixed"  # run.json's
    (run / "run.json").write_text("{}")
    assert applied(run)[0] == tiled  # model.pt's
    with caplog.at_level(logging.WARNING):
        how, _ = applied(sel, tile=64)
    assert how == dataclasses.replace(tiled, tile=64)
    assert "tile=64 differs from how the study evaluated this model (tile=96" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert applied(checkpoint)[0] == DEFAULT_INFERENCE  # no record: as before, and says so
    assert "no record of how the study applied this model" in caplog.text

    (run / "run.json").write_text(json.dumps({"inference": whole.as_dict()}))
    seen = []
    real = denoise_module.denoise_array

    def spy(model, plane, **kw):
        seen.append((plane.shape, kw["tile"], kw["low"], kw["high"]))
        return real(model, plane, **kw)

    src = tmp_path / "big.tif"
    tifffile.imwrite(src, image((2048, 2048)))
    denoise_module.denoise_array = spy
    try:
        denoise_files(run, [src], tmp_path / "out", progress=False)
    finally:
        denoise_module.denoise_array = real
    assert seen == [((2048, 2048), None, 1.0, 99.0)]
