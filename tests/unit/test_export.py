"""``fmdenoise export``: a bioimage.io package that validates and reproduces its test output."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
import tifffile
import torch
import yaml

from fmdenoise.cli import main
from fmdenoise.deploy.export import export_bioimageio, validate_package
from fmdenoise.errors import FmdenoiseError
from fmdenoise.models import build
from fmdenoise.models.checkpoints import save_model

from ..helpers import SMALL as MODELS_SMALL

SMALL = {**MODELS_SMALL, "care_unet": {"unet_n_first": 4}}


def checkpoint(tmp_path, arch):
    torch.manual_seed(0)
    path = tmp_path / f"{arch}.pt"
    save_model(path, build(arch, **SMALL[arch]), arch, SMALL[arch])
    return path


@pytest.mark.parametrize("arch", list(SMALL))
def test_package_validates_and_reproduces_its_test_output(tmp_path, arch):
    from bioimageio.core import test_model

    out = export_bioimageio(checkpoint(tmp_path, arch), tmp_path / "pkg" / "model.zip")
    assert validate_package(out).status == "valid-format"
    # bioimageio.core loads it as a consumer would: runs the test input through the weights
    # (preprocessing included) and compares with the test output, then other sizes/batches
    summary = test_model(out)
    assert summary.status == "passed", summary.display() or summary
    names = {d.name for d in summary.details}
    assert any("Reproduce test outputs" in n for n in names), names
    with zipfile.ZipFile(out) as zf:
        rdf = yaml.safe_load(zf.read("rdf.yaml"))
        assert {"weights.pt", "test_input.npy", "test_output.npy", "cover.png"} <= set(
            zf.namelist()
        )
    pre = next(p for p in rdf["inputs"][0]["preprocessing"] if p["id"] == "scale_range")
    assert (pre["kwargs"]["min_percentile"], pre["kwargs"]["max_percentile"]) == (0.1, 99.9)
    assert rdf["weights"]["torchscript"]["pytorch_version"] == torch.__version__.split("+")[0]
    readme = zf_text(out, "README.md")
    assert "## Noise range" in readme and "was not recorded" in readme  # no training record


def zf_text(package, name):
    with zipfile.ZipFile(package) as zf:
        return zf.read(name).decode()


def test_package_states_the_training_noise_range(tmp_path):
    from fmdenoise.data.noise import noise_range

    from .test_noise_range import camera

    rng = np.random.default_rng(0)
    trained = noise_range([camera(rng, 200) for _ in range(3)])
    path = tmp_path / "care.pt"
    save_model(path, build("care_unet", **SMALL["care_unet"]), "care_unet", SMALL["care_unet"],
               training_noise=trained)  # fmt: skip
    readme = zf_text(export_bioimageio(path, tmp_path / "pkg.zip"), "README.md")
    level = trained["noise_level"]
    assert "Trained on 3 images with a relative noise level" in readme
    assert f"from {level['min']:.4f} to {level['max']:.4f}" in readme


def test_cli_export_with_a_test_image(tmp_path, capsys):
    img = np.random.default_rng(0).poisson(30, (150, 140)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "mine.tif", img)
    ckpt = checkpoint(tmp_path, "drunet")
    rc = main(
        [
            "export",
            str(ckpt),
            str(tmp_path / "m.zip"),
            "--name",
            "my denoiser",
            "--author",
            "A. Microscopist",
            "--test-image",
            str(tmp_path / "mine.tif"),
        ]
    )
    assert rc == 0 and capsys.readouterr().out.strip() == str(tmp_path / "m.zip")
    with zipfile.ZipFile(tmp_path / "m.zip") as zf:
        rdf = yaml.safe_load(zf.read("rdf.yaml"))
        (tmp_path / "ti.npy").write_bytes(zf.read("test_input.npy"))
    assert rdf["name"] == "my denoiser" and rdf["authors"][0]["name"] == "A. Microscopist"
    # the centre crop of the image, sides cut to multiples of 16
    np.testing.assert_array_equal(np.load(tmp_path / "ti.npy")[0, 0], img[3:147, 6:134])


def test_export_errors_leave_nothing(tmp_path, capsys):
    ckpt = checkpoint(tmp_path, "drunet")
    with pytest.raises(FmdenoiseError, match=r"must end in \.zip"):
        export_bioimageio(ckpt, tmp_path / "m.tar")
    tifffile.imwrite(tmp_path / "tiny.tif", np.ones((20, 20), np.float32))
    assert (
        main(
            [
                "export",
                str(ckpt),
                str(tmp_path / "m.zip"),
                "--test-image",
                str(tmp_path / "tiny.tif"),
            ]
        )
        == 2
    )
    assert "smaller than 64x64" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.zip")) and not list(tmp_path.glob(".*"))


def test_package_applies_the_models_recorded_settings(tmp_path):
    """A model the study trained carries how it was evaluated: the package's preprocessing
    takes its percentiles, its README says whole image or tiles, and bioimage.io's own test
    passes with them."""
    from bioimageio.core import test_model

    from fmdenoise.settings import InferenceSettings

    how = InferenceSettings(None, 16, 1.0, 99.5, {"mode": "fixed", "sigma": 0.1})
    path = tmp_path / "care.pt"
    save_model(path, build("care_unet", **SMALL["care_unet"]), "care_unet", SMALL["care_unet"],
               inference=how.as_dict())  # fmt: skip
    out = export_bioimageio(path, tmp_path / "pkg.zip")
    assert test_model(out).status == "passed"
    with zipfile.ZipFile(out) as zf:
        rdf = yaml.safe_load(zf.read("rdf.yaml"))
    pre = next(p for p in rdf["inputs"][0]["preprocessing"] if p["id"] == "scale_range")
    assert (pre["kwargs"]["min_percentile"], pre["kwargs"]["max_percentile"]) == (1.0, 99.5)
    assert "evaluated it on whole images at once" in zf_text(out, "README.md")
