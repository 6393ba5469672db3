"""The cost table and the figures: numbers from the run and timing files, PNGs that open."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

from fmdenoise.evaluate import figures
from fmdenoise.evaluate.predict import predict_dataset
from fmdenoise.evaluate.tables import cost_table, write_cost_table
from fmdenoise.io import write_json

from .test_evaluation import NORM, dataset  # noqa: F401  (fixture)


def _run(path, wall, gpu, params=1000, device="cuda"):
    path.mkdir(parents=True)
    write_json(
        path / "run.json",
        {"wall_seconds": wall, "gpu_hours": gpu, "parameters": params, "device_type": device},
    )
    return str(path)


@pytest.fixture
def cost_inputs(tmp_path):
    runs = [_run(tmp_path / "runs" / f"c{i}", 3600.0 * (i + 1), 0.5 * (i + 1)) for i in range(3)]
    sel = {"selected": {"run": runs[1]}, "candidates": [{"run": r} for r in runs]}
    write_json(tmp_path / "selected.json", sel)
    timing = {}
    for method, spmx, params in (("drunet", 2.0, 1000), ("bm3d", 30.0, None)):
        timing[(method, "d1")] = tmp_path / f"{method}.json"
        write_json(
            timing[(method, "d1")],
            {"seconds_per_megapixel": spmx, "device_type": "cpu", "parameters": params},
        )
    return timing, {("drunet", "d1"): tmp_path / "selected.json"}


def test_cost_table_sums_the_sweep_and_reports_the_selected_run(tmp_path, cost_inputs):
    table = cost_table(*cost_inputs).set_index("method")
    drunet = table.loc["drunet"]
    assert drunet["train_wall_hours"] == pytest.approx(2.0)  # the selected cell, c1
    assert drunet["train_gpu_hours"] == pytest.approx(1.0)
    assert drunet["sweep_cells"] == 3
    assert drunet["sweep_wall_hours"] == pytest.approx(1 + 2 + 3)
    assert drunet["sweep_gpu_hours"] == pytest.approx(0.5 + 1.0 + 1.5)
    assert drunet["inference_s_per_mpx"] == 2.0 and drunet["parameters"] == 1000
    assert pd.isna(table.loc["bm3d", "train_wall_hours"])
    write_cost_table(table.reset_index(), tmp_path / "t" / "cost", "Cost")
    md = (tmp_path / "t" / "cost.md").read_text()
    row = next(line for line in md.splitlines() if "| drunet" in line)
    assert [c.strip() for c in row.strip("|").split("|")] == [
        "d1",
        "drunet",
        "1,000",
        "2",
        "1",
        "6",
        "3",
        "2.00",
        "cuda/cpu",
    ]
    assert "-/cpu" in md
    assert "\\begin{table}" in (tmp_path / "t" / "cost.tex").read_text()
    back = pd.read_csv(tmp_path / "t" / "cost.csv")
    assert back.set_index("method").loc["drunet", "sweep_wall_hours"] == pytest.approx(6.0)


def _png(path):
    img = imread(path)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    return img


def test_crop_box_and_shared_contrast():
    assert figures.crop_box((100, 300), 64) == (slice(18, 82), slice(118, 182))
    assert figures.crop_box((40, 50), 256) == (slice(0, 40), slice(0, 50))
    rng = np.random.default_rng(0)
    gt = rng.random((32, 32)).astype(np.float32) * 500 + 100
    panels = figures.shared_contrast(gt, {"scaled": 3 * gt - 7, "noisy": gt + 50})
    # an affine copy of the ground truth is shown exactly like the ground truth
    np.testing.assert_allclose(panels["scaled"], panels["ground truth"], atol=1e-4)
    np.testing.assert_allclose(panels["noisy"], panels["ground truth"], atol=1e-4)
    assert panels["ground truth"].min() < 0.01 and panels["ground truth"].max() > 0.99


def test_example_crops(tmp_path, dataset):  # noqa: F811
    preds = {}
    for kind in ("raw", "bm3d"):
        predict_dataset({"kind": kind}, dataset, tmp_path / kind, NORM)
        preds[kind] = tmp_path / kind
    figures.example_crops(dataset, preds, tmp_path / "fig" / "ex.png", crop=24)
    _png(tmp_path / "fig" / "ex.png")
    assert not list((tmp_path / "fig").glob(".*"))  # no temporary left behind


def test_learning_curves_and_psnr_vs_cost(tmp_path):
    runs = []
    for dataset_name in ("d1", "d2"):
        for init, offset in (("pretrained", 2.0), ("scratch", 0.0)):
            d = tmp_path / dataset_name / init
            d.mkdir(parents=True)
            pd.DataFrame({"step": [0, 10, 20], "val_psnr": np.array([20, 24, 26]) + offset}).to_csv(
                d / "curve.csv", index=False
            )
            runs.append(
                {
                    "run": str(d),
                    "model": "drunet",
                    "dataset": dataset_name,
                    "init": init,
                    "aug": "none",
                    "seed": 0,
                }
            )
    write_json(tmp_path / "studies.json", {"runs": runs})
    figures.learning_curves([tmp_path / "studies.json"], tmp_path / "curves.png")
    _png(tmp_path / "curves.png")
    write_json(tmp_path / "empty.json", {"runs": []})
    with pytest.raises(ValueError, match="no runs"):
        figures.learning_curves([tmp_path / "empty.json"], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()

    main = pd.DataFrame(
        {
            "dataset": ["d1"] * 3,
            "method": ["raw", "care", "drunet"],
            "psnr": [20.0, 30.0, 31.0],
            "psnr_ci_low": [19.0, 29.0, 30.0],
            "psnr_ci_high": [21.0, 31.0, 32.0],
        }
    )
    cost = pd.DataFrame(
        {
            "dataset": ["d1"] * 3,
            "method": ["raw", "care", "drunet"],
            "train_wall_hours": [None, 1.0, 2.0],
        }
    )
    main.to_csv(tmp_path / "main.csv", index=False)
    cost.to_csv(tmp_path / "cost.csv", index=False)
    figures.psnr_vs_cost(tmp_path / "main.csv", tmp_path / "cost.csv", tmp_path / "cost.png")
    _png(tmp_path / "cost.png")
