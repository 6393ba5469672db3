"""Transfer across datasets: one model applied to other datasets' test sets (metrics per
image, nothing kept but the csv), the transfer table by hand, and its heat map."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fmdenoise.data.ingest import ingest_dataset
from fmdenoise.evaluate.figures import transfer_heatmap
from fmdenoise.evaluate.metrics import CONVENTION, evaluate_dataset
from fmdenoise.evaluate.predict import predict_dataset
from fmdenoise.evaluate.transfer import (
    evaluate_transfer,
    transfer_summary,
    transfer_table,
    write_transfer_table,
)
from fmdenoise.models import build
from fmdenoise.models.checkpoints import save_model

from .test_evaluation import NORM
from .test_ingest import STACK_CFG, make_stacks


def metric_csv(tmp_path, method, dataset, psnr):
    path = tmp_path / "metrics" / method / f"{dataset}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"image": ["a", "b"], "psnr": psnr, "ssim": 0.5, "convention": CONVENTION}).to_csv(
        path, index=False
    )
    return path


def test_transfer_table_by_hand(tmp_path):
    """Two datasets, a fine-tuned model (m) and a scratch one (care): each cell's gain over
    raw, over zero-shot (m only) and against the model selected on the tested dataset."""
    mean = {  # mean test PSNR: (method, dataset) -> two images around it
        ("raw", "A"): 20.0, ("raw", "B"): 22.0,
        ("m-zeroshot", "A"): 25.0, ("m-zeroshot", "B"): 26.0,
        ("m", "A"): 30.0, ("m", "B"): 31.0,
        ("care", "A"): 28.0, ("care", "B"): 29.0,
    }  # fmt: skip
    metrics = {k: metric_csv(tmp_path, *k, [v - 0.5, v + 0.5]) for k, v in mean.items()}
    transfer = {}
    runs = [("m", "A", "B", 27.5), ("m", "B", "A", 24.0), ("care", "A", "B", 23.0)]
    for model, source, tested, value in [*runs, ("care", "B", "A", 21.0)]:
        path = tmp_path / "transfer" / model / f"{source}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"image": ["a", "b"], "psnr": [value - 1, value + 1], "tested_on": tested}
                     ).to_csv(path, index=False)  # fmt: skip
        transfer[(model, source)] = path
    table = transfer_table(transfer, metrics, finetuned=["m"])
    assert len(table) == 2 * 2 * 2  # models x trained on x tested on (the diagonal in-domain)
    row = table.set_index(["model", "trained_on", "tested_on"]).loc[("m", "A", "B")]
    assert row["psnr"] == 27.5 and row["n"] == 2
    assert row["gain_over_raw"] == pytest.approx(27.5 - 22.0)
    assert row["gain_over_zeroshot"] == pytest.approx(27.5 - 26.0)
    assert row["vs_in_domain"] == pytest.approx(27.5 - 31.0)
    care = table.set_index(["model", "trained_on", "tested_on"]).loc[("care", "B", "A")]
    assert pd.isna(care["gain_over_zeroshot"]) and care["gain_over_raw"] == pytest.approx(1.0)
    diagonal = table[table["trained_on"] == table["tested_on"]]
    assert (diagonal["vs_in_domain"] == 0).all() and len(diagonal) == 4
    summary = transfer_summary(table)
    assert summary == {
        "pairs": 4, "over_raw": 4, "median_gain_over_raw": pytest.approx((1.0 + 4.0) / 2),
        "zero_shot_pairs": 2, "over_zero_shot": 1,
        "median_vs_in_domain": pytest.approx(-6.0),  # of -3.5, -6, -6, -7
    }  # fmt: skip
    write_transfer_table(table, tmp_path / "tables" / "transfer")
    md = (tmp_path / "tables" / "transfer.md").read_text()
    assert "**m**" in md and "+5.50 (+1.50)" in md and "| care: trained on" in md
    assert (tmp_path / "tables" / "transfer.tex").read_text().count("\\begin{table}") == 2
    transfer_heatmap(tmp_path / "tables" / "transfer.csv", tmp_path / "transfer.png")
    assert (tmp_path / "transfer.png").read_bytes()[:4] == b"\x89PNG"


def test_evaluate_transfer_equals_predict_then_metrics(tmp_path):
    """One model on two other datasets' test sets: the per-image metrics equal predicting
    each test set with the predict rule's function and measuring it; no prediction is kept."""
    data = {}
    for name in ("B", "C"):
        make_stacks(tmp_path / f"src{name}", n_train=3, n_test=2)
        ingest_dataset(
            tmp_path / f"src{name}", STACK_CFG, tmp_path / name, val_fraction=0.34, seed=0
        )
        data[name] = tmp_path / name
    save_model(tmp_path / "m.pt", build("care_unet", unet_n_first=4), "care_unet",
               {"unet_n_first": 4})  # fmt: skip
    method = {"kind": "finetuned", "checkpoint": str(tmp_path / "m.pt")}
    out = evaluate_transfer(method, data, tmp_path / "t.csv", NORM, tile=32, overlap=8)
    assert list(out.columns[:2]) == ["image", "psnr"] and set(out["tested_on"]) == {"B", "C"}
    saved = pd.read_csv(tmp_path / "t.csv")
    for name, folder in data.items():
        predict_dataset(method, folder, tmp_path / "pred" / name, NORM, tile=32, overlap=8)
        direct = evaluate_dataset(folder, tmp_path / "pred" / name)
        mine = saved[saved["tested_on"] == name].reset_index(drop=True)
        np.testing.assert_allclose(mine["psnr"], direct["psnr"], rtol=1e-6)
        np.testing.assert_allclose(mine["microssim"], direct["microssim"], rtol=1e-6)
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".csv") == ["t.csv"]
