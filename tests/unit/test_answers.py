"""answers.md from hand-made tables whose answers are known: a significant win, a tie and a
loss against the best baseline, fine-tuning above zero-shot, scratch catching up in one run and
not in another, a grid where the learning rate explains (almost) everything."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fmdenoise.evaluate.answers import (
    answer_choices,
    factor_shares,
    first_rung_grid,
    min_wilcoxon_p,
    scratch_catch_up,
    write_answers,
)
from fmdenoise.evaluate.metrics import CONVENTION
from fmdenoise.evaluate.tables import main_table

N = 10
FINETUNED = ["win", "tie", "loss"]


def metric_file(tmp_path, method, dataset, psnr, ssim=0.8, microssim=None):
    df = pd.DataFrame({"image": [f"i{k:02d}" for k in range(len(psnr))], "psnr": psnr})
    df["ssim"], df["convention"] = ssim, CONVENTION
    if microssim is not None:
        df["microssim"] = microssim
    path = tmp_path / "metrics" / method / f"{dataset}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False)
    return path


@pytest.fixture
def study(tmp_path):
    rng = np.random.default_rng(0)
    base = 30 + rng.normal(0, 1, N)
    psnr = {
        "raw": base - 8,
        "care": base,  # the best baseline
        "win": base + 0.6 + rng.normal(0, 0.05, N),
        "tie": base + rng.normal(0, 0.3, N),
        "loss": base - 0.6 + rng.normal(0, 0.05, N),
    }
    for m in FINETUNED:
        psnr[f"{m}-zeroshot"] = base - 3 + rng.normal(0, 0.05, N)
    # SSIM prefers "win", MicroSSIM the baseline "care"
    ssim = {m: 0.85 if m == "win" else 0.8 for m in psnr}
    micro = {m: 0.9 if m == "care" else 0.5 for m in psnr}
    metrics = {
        (m, "d"): metric_file(tmp_path, m, "d", v, ssim[m], micro[m]) for m, v in psnr.items()
    }
    main = main_table(metrics, FINETUNED)
    main.to_csv(tmp_path / "main.csv", index=False)
    pd.DataFrame(
        {"dataset": ["d"] * 3, "method": FINETUNED, "sweep_wall_hours": [1.0, 2.0, 3.0],
         "sweep_gpu_hours": [1.0, 2.0, 3.0], "inference_s_per_mpx": [0.1, 0.2, 0.3]}
    ).to_csv(tmp_path / "cost.csv", index=False)  # fmt: skip
    rows = []
    for model in ("win", "tie"):
        for lr, lr_effect in ((1e-3, 2.0), (1e-4, 0.0)):
            for loss, loss_effect in (("mae", 0.1), ("mse", 0.0)):
                value = 30 + lr_effect + loss_effect
                rows.append(
                    {"model": model, "dataset": "d", "loss": loss, "lr": lr, "seed": 0,
                     "val_psnr": value, "val_ssim": 0.8}
                )  # fmt: skip
    pd.DataFrame(rows).to_csv(tmp_path / "hyperparameters.csv", index=False)
    steps = [0, 100, 200, 300]
    scratch = pd.concat(
        [
            # scratch catches up (within 0.1 dB) at step 200
            pd.DataFrame({"model": "win", "dataset": "d", "loss": "mae", "lr": 1e-3, "seed": 0,
                          "step": steps, "val_psnr_pretrained": [25, 30, 31, 31.5],
                          "val_psnr_scratch": [10, 25, 30.95, 31.6]}),
            # scratch never does
            pd.DataFrame({"model": "tie", "dataset": "d", "loss": "mae", "lr": 1e-3, "seed": 0,
                          "step": steps, "val_psnr_pretrained": [25, 30, 31, 31.5],
                          "val_psnr_scratch": [10, 20, 25, 28]}),
        ]
    )  # fmt: skip
    scratch.to_csv(tmp_path / "scratch.csv", index=False)
    aug = scratch.rename(columns={"val_psnr_scratch": "val_psnr_rot"})
    aug["val_psnr_rot"] = aug["val_psnr_pretrained"] + 0.01
    aug.to_csv(tmp_path / "augmentation.csv", index=False)
    tables = {t: tmp_path / f"{t}.csv" for t in ("main", "cost", "hyperparameters", "scratch",
                                                  "augmentation")}  # fmt: skip
    return tables, metrics


def test_answers_say_what_the_numbers_support(tmp_path, study):
    tables, metrics = study
    text = write_answers(tables, metrics, FINETUNED, tmp_path / "answers.md")
    assert (tmp_path / "answers.md").read_text().strip() == text.strip()
    for q in ("## Q1.", "## Q2.", "## Q3."):
        assert q in text
    # Q1: every fine-tuned model beats its zero-shot weights, significantly (n = 10)
    assert "raised the mean test PSNR in 3 of 3" in text
    assert "significantly better in 3, significantly worse in 0, not significant in 0" in text
    q1 = text.split("## Q2.")[0]
    assert "n = 10 test images" in q1 and "smallest p-value" not in q1
    # scratch catches up in one of two runs, at step 200
    assert "within 0.1 dB of pretrained in 1 of 2 runs; median step 200" in text
    assert "led training from scratch at the first validation after step 0 in 2 of 2" in text
    # Q2: the verdicts against the best baseline (care), with n and the test named
    assert "Against the best baseline, care" in text
    assert "better: win; not significant: tie; worse: loss" in text
    assert "Holm over 3 comparisons" in text
    # MicroSSIM beside SSIM: the table has both, and their disagreement is said
    assert "SSIM and MicroSSIM disagree: best by SSIM is win (0.850), by MicroSSIM care " in text
    assert "(0.900; win 0.500)" in text and "| MicroSSIM [95% CI]" in text
    # Q3: the learning rate dominates the grid
    assert "the learning rate matters more" in text
    assert "only one" not in text
    # augmentation: +0.01 dB in both runs; n = 2 cannot be significant
    assert "median of +0.01 dB" in text and "not significant" in text


def test_small_n_is_said(tmp_path):
    assert min_wilcoxon_p(4) == pytest.approx(0.125) and min_wilcoxon_p(6) < 0.05
    rng = np.random.default_rng(1)
    base = 30 + rng.normal(0, 1, 4)
    metrics = {
        ("care", "d"): metric_file(tmp_path, "care", "d", base),
        ("m", "d"): metric_file(tmp_path, "m", "d", base + 1),
        ("m-zeroshot", "d"): metric_file(tmp_path, "m-zeroshot", "d", base - 1),
    }
    main_table(metrics, ["m"]).to_csv(tmp_path / "main.csv", index=False)
    cost_columns = ["dataset", "method", "sweep_wall_hours", "sweep_gpu_hours"]
    cost_columns.append("inference_s_per_mpx")
    pd.DataFrame(columns=cost_columns).to_csv(tmp_path / "cost.csv", index=False)
    hyper = {"model": ["m"], "dataset": ["d"], "loss": ["mae"], "lr": [1e-3], "seed": [0]}
    hyper |= {"val_psnr": [30.0], "val_ssim": [0.8]}
    pd.DataFrame(hyper).to_csv(tmp_path / "h.csv", index=False)
    tables = {"main": tmp_path / "main.csv", "cost": tmp_path / "cost.csv",
              "hyperparameters": tmp_path / "h.csv"}  # fmt: skip
    text = write_answers(tables, metrics, ["m"], tmp_path / "answers.md")
    assert "With n = 4 the smallest p-value the test can give is 0.125" in text
    assert "not significant: m" in text  # +1 dB on all 4 images, still not significant
    assert "only one learning rate in the grid" in text
    assert "The scratch study was not run." in text


def test_factor_shares_and_catch_up_by_hand():
    hyper = pd.DataFrame(
        {"model": "m", "dataset": "d", "loss": ["a", "a", "b", "b"], "lr": [1, 2, 1, 2],
         "val_psnr": [30.0, 32.0, 31.0, 33.0]}
    )  # fmt: skip
    # grand mean 31.5; lr means 30.5, 32.5 -> SS 4 x 1 = 4; loss means 31, 32 -> SS 1; total 5
    shares = factor_shares(hyper).iloc[0]
    assert shares["lr_share"] == pytest.approx(0.8) and shares["loss_share"] == pytest.approx(0.2)
    # a dataset trained only at the cell selected elsewhere (grid.sweep_datasets) adds nothing
    moved = pd.DataFrame([{"model": "m", "dataset": "d2", "loss": "a", "lr": 2, "val_psnr": 9.0}])
    both = factor_shares(pd.concat([hyper, moved])).iloc[0]
    assert both["lr_share"] == pytest.approx(0.8) and both["datasets"] == 1
    curve = pd.DataFrame(
        {"model": "m", "dataset": "d", "seed": 0, "step": [0, 10, 20],
         "val_psnr_pretrained": [20.0, 25.0, 26.0], "val_psnr_scratch": [5.0, 20.0, 25.95]}
    )  # fmt: skip
    row = scratch_catch_up(curve).iloc[0]
    assert row["gap_early_db"] == pytest.approx(5.0) and row["early_step"] == 10
    assert row["gap_end_db"] == pytest.approx(0.05) and row["catch_up_step"] == 20


def test_q3_after_a_halving_search_reads_the_first_rung():
    """Under halving the hyperparameters table holds only the finalists; Q3 compares every
    cell at the first rung's budget instead (the only budget all cells reached)."""
    rows = []
    for loss, dl in (("mae", 0.0), ("ssim", 0.1)):
        for lr, dr in ((1e-3, 0.0), (1e-4, 2.0)):
            final = 30 + dl + dr + 1 if (loss, lr) == ("ssim", 1e-4) else None
            rows.append(
                {"model": "m", "dataset": "d", "loss": loss, "lr": lr, "seed": 0,
                 "psnr@10": 20 + dl + dr, "promoted@10": lr == 1e-4, "psnr@40": final,
                 "picked": final is not None}
            )  # fmt: skip
    search = pd.DataFrame(rows)
    grid, note = first_rung_grid(search)
    assert list(grid["val_psnr"]) == [20.0, 22.0, 20.1, 22.1] and "10 steps" in note
    hyper = pd.DataFrame([{"model": "m", "dataset": "d", "loss": "ssim", "lr": 1e-4,
                           "val_psnr": 33.1}])  # fmt: skip
    text = answer_choices(hyper, pd.DataFrame(), search)
    assert "first rung's budget of 10 steps" in text
    assert "the learning rate explains 100 %" in text and "the loss 0 %" in text


def test_answers_say_how_each_dataset_was_split(tmp_path):
    from fmdenoise.evaluate.answers import describe_splits

    rows = [
        {"image": f"i{i}", "split": s, "role": r, "split_rule": "test: the last 2 of 9 pairs"}
        for i, s in enumerate(["train"] * 5 + ["val"] * 2 + ["test"] * 2)
        for r in ("low", "gt")
    ]
    (tmp_path / "a").mkdir()
    pd.DataFrame(rows).to_csv(tmp_path / "a" / "manifest.csv", index=False)
    (tmp_path / "b").mkdir()  # an ingest from before split_rule existed
    pd.DataFrame(rows).drop(columns="split_rule").to_csv(tmp_path / "b" / "manifest.csv")
    text = describe_splits({"a": tmp_path / "a", "b": tmp_path / "b"})
    assert "| a | 5 | 2 | 2 | test: the last 2 of 9 pairs |" in text
    assert "| b | 5 | 2 | 2 | not recorded (older ingest) |" in text


def test_seed_spread_by_hand_and_what_answers_say(tmp_path):
    """Three seeds per trained model: the main table's seed mean and sd (ddof 1) by hand; Q2
    says which gap between neighbours exceeds the two seed sds summed, Q3 each factor's
    effect as a multiple of the median seed sd; Q1 the transfer sentence."""
    from fmdenoise.evaluate.tables import seed_files_by_cell

    base = np.linspace(29, 31, N)
    # test means: a 32.0 / 32.2 / 32.4 (sd 0.2); b 31.9 / 32.0 / 32.1 (sd 0.1);
    # c 30.0 / 30.1 / 30.2 (sd 0.1): a - b is training noise, b - c is not
    means = {"a": [32.0, 32.2, 32.4], "b": [31.9, 32.0, 32.1], "c": [30.0, 30.1, 30.2]}
    metrics = {("raw", "d"): metric_file(tmp_path, "raw", "d", base - 8)}
    seed_paths = []
    for m, values in means.items():
        metrics[(m, "d")] = metric_file(tmp_path, m, "d", base - 30 + values[0])
        for k, v in enumerate(values[1:], start=1):
            seed_paths.append(metric_file(tmp_path, f"{m}-seed{k}", "d", base - 30 + v))
    seeds = seed_files_by_cell(seed_paths)
    assert sorted(seeds) == [("a", "d"), ("b", "d"), ("c", "d")] and len(seeds[("a", "d")]) == 2
    main = main_table(metrics, ["a", "b", "c"], seed_files=seeds).set_index("method")
    assert main.loc["a", "seeds"] == 3
    assert main.loc["a", "psnr_seed_mean"] == pytest.approx(32.2)
    assert main.loc["a", "psnr_seed_sd"] == pytest.approx(0.2)
    assert main.loc["c", "psnr_seed_sd"] == pytest.approx(0.1)
    assert main.loc["a", "psnr"] == pytest.approx(32.0)  # the selection run, as before
    assert pd.isna(main.loc["raw", "psnr_seed_mean"])  # no seeds for a baseline
    main.reset_index().to_csv(tmp_path / "main.csv", index=False)
    pd.DataFrame(columns=["dataset", "method"]).to_csv(tmp_path / "cost.csv", index=False)
    hyper = pd.DataFrame(
        [{"model": "a", "dataset": "d", "loss": loss, "lr": lr, "seed": 0, "val_ssim": 0.8,
          "val_psnr": 30 + (1.0 if lr == 1e-3 else 0) + (0.05 if loss == "mae" else 0)}
         for loss in ("mae", "mse") for lr in (1e-3, 1e-4)]
    )  # fmt: skip
    hyper.to_csv(tmp_path / "hyperparameters.csv", index=False)
    transfer = pd.DataFrame(
        {"model": ["a", "a"], "trained_on": ["d", "e"], "tested_on": ["e", "d"], "n": [2, 2],
         "psnr": [30.0, 29.0], "gain_over_raw": [2.0, -0.5], "gain_over_zeroshot": [1.0, None],
         "vs_in_domain": [-1.0, -3.0]}
    )  # fmt: skip
    transfer.to_csv(tmp_path / "transfer.csv", index=False)
    tables = {t: tmp_path / f"{t}.csv" for t in ("main", "cost", "hyperparameters", "transfer")}
    text = write_answers(tables, {}, ["a", "b", "c"], tmp_path / "answers.md")
    assert (
        "Over 3 training seeds of each selected cell (sd of the test mean: a 0.20, b 0.10, " in text
    )
    assert "a - b +0.20 dB (within 0.30); b - c +1.90 dB (exceeds 0.20)" in text
    # Q3: lr effect 1.00 dB, loss 0.05 dB against the median seed sd 0.10
    assert "the median seed sd of the selected cells' test PSNR is 0.10 dB (3 seeds each)" in text
    assert "a learning rate 1.00 dB (10.0x); a loss 0.05 dB (0.5x)" in text
    # Q1: transfer
    assert "raised PSNR over the raw input in 1 of 2 model x (trained on, tested on) pairs" in text
    assert "beat their own zero-shot weights in 1 of 1" in text
    assert "differ by a median of -2.00 dB" in text
