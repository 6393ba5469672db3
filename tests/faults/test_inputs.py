"""Bad images, checkpoints and configs: one clear error naming the culprit, nothing written."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import tifffile
import torch
import yaml

from fmdenoise.config import check_output_folder, load_config
from fmdenoise.data.ingest import ingest_dataset
from fmdenoise.deploy.denoise import denoise_files
from fmdenoise.deploy.tiff_metadata import read_tiff
from fmdenoise.errors import CheckpointError, ConfigError, FmdenoiseError, ImageError
from fmdenoise.models import build
from fmdenoise.models.checkpoints import load_model, save_model

from ..helpers import DEMO

# ---------------------------------------------------------------- images (ingest)

PAIR_CFG = {
    "train": {"low": "low/*.tif", "gt": "gt/*.tif"},
    "test": {"low": "low/*.tif", "gt": "gt/*.tif"},
}


def _img(i):
    return np.random.default_rng(i).random((16, 16), dtype=np.float32)


IMAGE_FAULTS = {
    "not a TIFF": (lambda p: p.write_text("hello"), "not a readable TIFF"),
    "truncated TIFF": (
        lambda p: (tifffile.imwrite(p, _img(9)), p.write_bytes(p.read_bytes()[:300])),
        "not a readable TIFF|unreadable",
    ),
    "wrong dtype": (lambda p: tifffile.imwrite(p, _img(1).astype(np.complex64)), "pixel type"),
    "RGB": (lambda p: tifffile.imwrite(p, np.zeros((16, 16, 3), np.uint8)), "RGB"),
    "3D where 2D": (lambda p: tifffile.imwrite(p, np.zeros((2, 2, 16, 16), np.float32)), "2D"),
    "shape mismatch": (lambda p: tifffile.imwrite(p, _img(1)[:8]), "shape mismatch"),
    "NaN": (lambda p: tifffile.imwrite(p, np.full((16, 16), np.nan, np.float32)), "NaN or Inf"),
    "Inf": (lambda p: tifffile.imwrite(p, np.full((16, 16), np.inf, np.float32)), "NaN or Inf"),
    "constant": (lambda p: tifffile.imwrite(p, np.ones((16, 16), np.float32)), "constant"),
    "missing partner": (lambda p: None, "a1"),
}


@pytest.mark.parametrize("fault", list(IMAGE_FAULTS))
def test_bad_image_in_ingest(tmp_path, guard, fault):
    make, message = IMAGE_FAULTS[fault]
    src = tmp_path / "src"
    for kind in ("low", "gt"):
        (src / kind).mkdir(parents=True)
        for i in range(3):
            if kind == "gt" and i == 1:
                make(src / kind / "a1.tif")
            else:
                tifffile.imwrite(src / kind / f"a{i}.tif", _img(i))
    (tmp_path / "results").mkdir()
    guard.watch(tmp_path / "results")
    with pytest.raises(ImageError, match=message) as err:
        ingest_dataset(src, PAIR_CFG, tmp_path / "results" / "data", val_fraction=0.3, seed=0)
    assert "a1" in str(err.value)  # the culprit is named
    assert not (tmp_path / "results" / "data").exists()
    guard.check()


@pytest.mark.parametrize("fault", ["not a TIFF", "truncated TIFF", "RGB", "NaN", "wrong dtype"])
def test_bad_image_in_denoise(tmp_path, guard, fault):
    make, _ = IMAGE_FAULTS[fault]
    save_model(
        tmp_path / "m.pt", build("care_unet", unet_n_first=4), "care_unet", {"unet_n_first": 4}
    )
    (tmp_path / "in").mkdir()
    tifffile.imwrite(tmp_path / "in" / "good.tif", _img(0))
    make(tmp_path / "in" / "bad.tif")
    (tmp_path / "out").mkdir()
    guard.watch(tmp_path / "out")
    with pytest.raises(FmdenoiseError, match=r"bad\.tif"):
        denoise_files(tmp_path / "m.pt", [tmp_path / "in"], tmp_path / "out", progress=False)
    assert not list((tmp_path / "out").iterdir())  # not even the good one: checked first
    guard.check()


def test_constant_image_in_denoise_is_processed(tmp_path):
    """A constant image is legal input (an empty field of view): finite output, no crash."""
    save_model(
        tmp_path / "m.pt", build("care_unet", unet_n_first=4), "care_unet", {"unet_n_first": 4}
    )
    tifffile.imwrite(tmp_path / "flat.tif", np.full((32, 32), 7.0, np.float32))
    (out,) = denoise_files(
        tmp_path / "m.pt", [tmp_path / "flat.tif"], tmp_path / "o", progress=False
    )
    assert np.isfinite(read_tiff(out).data).all()


# ---------------------------------------------------------------- checkpoints

SMALL = {"in_nc": 2, "out_nc": 1, "nc": [8, 16, 32, 64], "nb": 1}


class Evil:
    def __reduce__(self):
        return (exec, ("open('/tmp/fmdenoise-pwned', 'w').write('x')",))


CHECKPOINT_FAULTS = {
    "truncated": (lambda p: p.write_bytes(p.read_bytes()[:1000]), "truncated or corrupt"),
    "not a checkpoint": (lambda p: p.write_bytes(b"\x00" * 64), "not a PyTorch checkpoint"),
    "wrong architecture": (
        lambda p: save_model(
            p, build("care_unet", unet_n_first=4), "care_unet", {"unet_n_first": 4}
        ),
        "holds a care_unet model, expected drunet",
    ),
    "missing keys": (
        lambda p: torch.save(
            {
                **torch.load(p, weights_only=True),
                "state_dict": dict(
                    list(torch.load(p, weights_only=True)["state_dict"].items())[2:]
                ),
            },
            p,
        ),
        "missing",
    ),
    "code-executing pickle": (
        lambda p: p.write_bytes(pickle.dumps({"format": "fmdenoise", "x": Evil()}, protocol=2)),
        "refused",
    ),
}


@pytest.mark.parametrize("fault", list(CHECKPOINT_FAULTS))
def test_bad_checkpoint(tmp_path, guard, fault):
    make, message = CHECKPOINT_FAULTS[fault]
    path = tmp_path / "ckpt" / "drunet.pt"
    path.parent.mkdir()
    save_model(path, build("drunet", **SMALL), "drunet", SMALL)
    make(path)
    guard.watch(tmp_path / "out")
    with pytest.raises(CheckpointError, match=message) as err:
        load_model(path, "drunet")
    assert str(path) in str(err.value)
    assert not os.path.exists("/tmp/fmdenoise-pwned")
    guard.check()


# ---------------------------------------------------------------- config


def _demo():
    return yaml.safe_load(DEMO.read_text())


CONFIG_FAULTS = {
    "unknown key": (lambda c: c.update(trainig={}), "trainig"),
    "wrong type": (lambda c: c["training"].update(steps="many"), "training.steps"),
    "empty grid": (lambda c: c["grid"].update(losses=[]), "grid.losses"),
    "unknown model": (lambda c: c["models"]["drunet"].update(arch="unet3000"), "unet3000"),
    "unknown loss": (lambda c: c["grid"].update(losses=["mae", "perceptual"]), "perceptual"),
    "learning rate <= 0": (lambda c: c["grid"].update(learning_rates=[0.0]), "learning_rates"),
}


@pytest.mark.parametrize("fault", list(CONFIG_FAULTS))
def test_bad_config(tmp_path, guard, fault):
    mutate, fragment = CONFIG_FAULTS[fault]
    cfg = _demo()
    mutate(cfg)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    guard.watch(tmp_path)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert fragment in str(err.value) and str(path) in str(err.value), str(err.value)
    guard.check()


def test_dataset_listed_twice(tmp_path, guard):
    text = DEMO.read_text()
    block = text[text.index("  actin-demo:") :].split("\n  mito-demo:")[0]
    path = tmp_path / "twice.yaml"
    path.write_text(text.replace(block, block + "\n" + block, 1))
    guard.watch(tmp_path)
    with pytest.raises(ConfigError, match="actin-demo"):
        load_config(path)
    guard.check()


def test_output_folder_not_writable(tmp_path, guard):
    (tmp_path / "afile").write_text("a file where a folder should be")
    guard.watch(tmp_path)
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        check_output_folder(tmp_path / "afile" / "results")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if __import__("os").access(ro, __import__("os").W_OK):  # root ignores permissions
            import unittest.mock as mock

            with (
                mock.patch(
                    "tempfile.TemporaryFile", side_effect=PermissionError(13, "Permission denied")
                ),
                pytest.raises(ConfigError, match="not writable"),
            ):
                check_output_folder(ro / "results")
        else:
            with pytest.raises(ConfigError, match="not writable"):
                check_output_folder(ro / "results")
    finally:
        ro.chmod(0o700)
    guard.check()
