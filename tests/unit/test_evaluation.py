"""Predictions of every method kind, per-image metrics, and the main table."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from fmdenoise.data.ingest import ingest_dataset
from fmdenoise.evaluate.metrics import CONVENTION, evaluate_dataset
from fmdenoise.evaluate.predict import predict_dataset
from fmdenoise.evaluate.tables import main_table, write_table
from fmdenoise.models import build
from fmdenoise.models.checkpoints import save_model
from fmdenoise.settings import NormalizationSettings

from .test_ingest import STACK_CFG, make_stacks

NORM = NormalizationSettings(low_percentile=0.1, high_percentile=99.9)


@pytest.fixture
def dataset(tmp_path):
    make_stacks(tmp_path / "src", n_train=4, n_test=3)
    ingest_dataset(tmp_path / "src", STACK_CFG, tmp_path / "data", val_fraction=0.25, seed=0)
    return tmp_path / "data"


@pytest.mark.parametrize("kind", ["raw", "provided", "bm3d", "bm3d-vst", "finetuned"])
def test_predict_and_evaluate_every_method_kind(tmp_path, dataset, kind):
    method = {"kind": kind}
    if kind == "provided":
        method["name"] = "care"
    if kind == "finetuned":
        save_model(
            tmp_path / "m.pt", build("care_unet", unet_n_first=4), "care_unet", {"unet_n_first": 4}
        )
        method["checkpoint"] = str(tmp_path / "m.pt")
    names = predict_dataset(method, dataset, tmp_path / "pred", NORM, tile=32, overlap=8)
    assert names == ["test-0000", "test-0001", "test-0002"]
    metrics = evaluate_dataset(dataset, tmp_path / "pred")
    assert list(metrics["image"]) == names
    assert set(metrics.columns) >= {"psnr", "ssim", "psnr_raw", "ssim_raw", "convention"}
    assert (metrics["convention"] == CONVENTION).all() and np.isfinite(metrics["psnr"]).all()
    timing = json.loads((tmp_path / "pred" / "timing.json").read_text())
    assert timing["images"] == 3 and timing["device_type"] == "cpu"
    assert timing["megapixels"] == pytest.approx(3 * 40 * 40 / 1e6)
    assert timing["seconds"] >= 0 and timing["seconds_per_megapixel"] >= 0
    assert (timing["parameters"] is not None and timing["parameters"] > 0) == (kind == "finetuned")


def test_microssim_is_the_packages_own_fitted_on_the_test_set(tmp_path, dataset):
    """MicroSSIM per image equals the authors' function given the same test set (parameters
    fitted on all images, then each scored); it ranks a scaled, offset copy of the ground
    truth above the noisy input although the copy's intensities are 10x off."""
    from microssim import micro_structural_similarity

    from fmdenoise.data.ingest import split_images
    from fmdenoise.io import read_image, write_tiff

    pred = tmp_path / "pred"
    pred.mkdir()
    gts, lows = [], []
    for name, low_path, gt_path in split_images(dataset, "test"):
        gts.append(read_image(gt_path))
        lows.append(read_image(low_path))
        write_tiff(pred / f"{name}.tif", lows[-1])
    metrics = evaluate_dataset(dataset, pred)
    expected = micro_structural_similarity(gts, lows)
    np.testing.assert_allclose(metrics["microssim"], expected, rtol=1e-12)
    assert metrics["microssim"].between(-1, 1).all()
    for name, gt in zip(metrics["image"], gts, strict=True):  # the truth, 10x and offset
        write_tiff(pred / f"{name}.tif", 10 * gt + 5)
    scaled = evaluate_dataset(dataset, pred)
    assert (scaled["microssim"] > metrics["microssim"]).all()
    assert scaled["microssim"].min() > 0.99


def test_raw_prediction_is_the_input(tmp_path, dataset):
    predict_dataset({"kind": "raw"}, dataset, tmp_path / "pred", NORM)
    from fmdenoise.io import read_image

    np.testing.assert_array_equal(
        read_image(tmp_path / "pred" / "test-0001.tif"),
        read_image(dataset / "test" / "low" / "test-0001.tif"),
    )


def test_main_table_compares_with_the_best_baseline(tmp_path):
    rng = np.random.default_rng(0)
    files = {}
    for method, base in (("raw", 20.0), ("care", 30.0), ("drunet", 31.0)):
        df = pd.DataFrame(
            {
                "image": [f"i{k}" for k in range(8)],
                "psnr": base + rng.normal(0, 0.1, 8),
                "ssim": 0.5 + base / 100,
                "microssim": np.linspace(0.6, 0.7, 8) + base / 100,
                "convention": CONVENTION,
            }
        )
        files[(method, "d1")] = tmp_path / f"{method}.csv"
        df.to_csv(files[(method, "d1")], index=False)
    table = main_table(files, finetuned=["drunet"])
    row = table.set_index("method").loc["drunet"]
    assert row["best_baseline"] == "care"
    assert row["p_vs_best_baseline"] == pytest.approx(2 / 2**8)  # all 8 pairs favour drunet
    assert row["p_holm"] == pytest.approx(2 / 2**8)  # one comparison: Holm leaves it
    assert row["verdict"] == "better" and row["comparisons"] == 1
    assert row["psnr_ci_low"] < row["psnr"] < row["psnr_ci_high"]
    assert row["microssim"] == pytest.approx(0.65 + 0.31)
    assert row["microssim_ci_low"] < row["microssim"] < row["microssim_ci_high"]
    write_table(table, tmp_path / "tables" / "main", "Main")
    assert (tmp_path / "tables" / "main.csv").exists()
    md = (tmp_path / "tables" / "main.md").read_text()
    assert "drunet" in md and CONVENTION in md and "| better" in md
    assert "0.960 [" in md  # MicroSSIM [95% CI]
    assert "\\begin{table}" in (tmp_path / "tables" / "main.tex").read_text()


def test_validation_tables(tmp_path):
    from fmdenoise.evaluate.tables import hyperparameter_table, study_table, write_plain_table
    from fmdenoise.io import write_json

    cands = [
        {
            "run": f"r{i}",
            "model": "m",
            "dataset": "d",
            "loss": loss,
            "lr": 1e-3,
            "seed": 0,
            "val_psnr": p,
            "val_ssim": 0.5,
        }
        for i, (loss, p) in enumerate([("mae", 30), ("mse", 29)])
    ]
    write_json(tmp_path / "sel.json", {"selected": cands[0], "candidates": cands})
    other = [{**cands[0], "run": "o0", "dataset": "e"}]  # e: not swept, trained d's selection
    transfer = {"dataset": "d", "note": "no sweep here"}
    write_json(
        tmp_path / "sel-e.json",
        {"selected": other[0], "candidates": other, "transfer_from": transfer},
    )
    hp = hyperparameter_table([tmp_path / "sel.json", tmp_path / "sel-e.json"])
    assert list(hp["selected"]) == [True, False, True]
    assert list(hp["dataset"]) == ["d", "d", "e"]
    assert list(hp["selected_on"]) == ["d", "d", "d"]
    runs = []
    for init, aug, psnr in (
        ("pretrained", "none", 30.0),
        ("scratch", "none", 25.0),
        ("pretrained", "rot", 30.5),
    ):
        d = tmp_path / f"{init}-{aug}"
        d.mkdir()
        pd.DataFrame(
            {"step": [0, 10], "val_psnr": [psnr - 2, psnr], "val_ssim": [0.4, 0.5]}
        ).to_csv(d / "curve.csv", index=False)
        runs.append(
            {
                "run": str(d),
                "model": "m",
                "dataset": "d",
                "loss": "mae",
                "lr": 1e-3,
                "seed": 0,
                "init": init,
                "aug": aug,
            }
        )
    write_json(tmp_path / "studies.json", {"runs": runs})
    scratch = study_table([tmp_path / "studies.json"], "scratch")
    assert list(scratch["val_psnr_pretrained"]) == [28.0, 30.0]
    assert list(scratch["val_psnr_scratch"]) == [23.0, 25.0]
    aug = study_table([tmp_path / "studies.json"], "augmentation")
    assert list(aug["val_psnr_rot"]) == [28.5, 30.5]
    write_plain_table(aug, tmp_path / "t" / "augmentation", "Aug")
    assert "val_psnr_rot" in (tmp_path / "t" / "augmentation.md").read_text()


def test_bm3d_over_several_processes_equals_one(tmp_path, dataset):
    """BM3D uses the job's CPUs (one image per process) and gives the serial result exactly:
    BM3D runs on one thread in both (its own threads change the last digits run to run)."""
    from fmdenoise.io import read_image

    predict_dataset({"kind": "bm3d"}, dataset, tmp_path / "serial", NORM)
    predict_dataset({"kind": "bm3d"}, dataset, tmp_path / "parallel", NORM, workers=2)
    for name in ("test-0000", "test-0001", "test-0002"):
        np.testing.assert_array_equal(
            read_image(tmp_path / "serial" / f"{name}.tif"),
            read_image(tmp_path / "parallel" / f"{name}.tif"),
        )
    timing = json.loads((tmp_path / "parallel" / "timing.json").read_text())
    assert timing["workers"] == 2 and timing["megapixels"] == pytest.approx(3 * 40 * 40 / 1e6)
    serial = json.loads((tmp_path / "serial" / "timing.json").read_text())
    assert serial["workers"] == 1


def test_main_table_holm_over_a_datasets_comparisons(tmp_path):
    """Three fine-tuned models against the best baseline: better, worse, tie; Holm over 3."""
    rng = np.random.default_rng(1)
    base = 30 + rng.normal(0, 1, 10)
    shifts = {"care": 0.0, "up": 0.5, "down": -0.5, "tie": None}
    files = {}
    for method, shift in shifts.items():
        psnr = base + (shift if shift is not None else rng.normal(0, 0.3, 10))
        df = pd.DataFrame({"image": [f"i{k}" for k in range(10)], "psnr": psnr, "ssim": 0.9})
        df["convention"] = CONVENTION
        files[(method, "d")] = tmp_path / f"{method}.csv"
        df.to_csv(files[(method, "d")], index=False)
    table = main_table(files, finetuned=["up", "down", "tie"]).set_index("method")
    from scipy import stats

    raw = {m: stats.wilcoxon(pd.read_csv(files[(m, "d")])["psnr"], base).pvalue for m in shifts}
    order = sorted(["up", "down", "tie"], key=lambda m: raw[m])
    expected, running = {}, 0.0
    for i, m in enumerate(order):
        running = max(running, min(1.0, (3 - i) * raw[m]))
        expected[m] = running
    for m in ("up", "down", "tie"):
        assert table.loc[m, "p_holm"] == pytest.approx(expected[m])
        assert table.loc[m, "comparisons"] == 3
    assert table.loc["up", "verdict"] == "better" and table.loc["down", "verdict"] == "worse"
    assert table.loc["tie", "verdict"] == "not significant"


def test_bm3d_is_reproducible(monkeypatch):
    """Both BM3D baselines ask the library for one thread (with its own, one per core, the
    aggregation order and so the last digits change from run to run) and repeat exactly."""
    import bm3d

    from fmdenoise.evaluate.predict import bm3d_denoise, bm3d_vst_denoise

    threads, call = [], bm3d.bm3d

    def spy(image, sigma_psd, profile="np", **kw):
        threads.append(profile.num_threads)
        return call(image, sigma_psd=sigma_psd, profile=profile, **kw)

    monkeypatch.setattr(bm3d, "bm3d", spy)
    rng = np.random.default_rng(0)
    image = rng.poisson(20 + 30 * rng.random((64, 64))).astype(np.float32)
    for denoise in (lambda: bm3d_denoise(image, 0.1, 99.9), lambda: bm3d_vst_denoise(image)):
        np.testing.assert_array_equal(denoise(), denoise())
    assert threads == [1, 1, 1, 1]
