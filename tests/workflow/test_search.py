"""A real snakemake run of a tiny successive-halving search (grid.search: halving) on one
dataset, transferred to a second (grid.sweep_datasets): rung jobs only for promoted cells, the
final rung continuing each cell's run, the search table, one run per model at the selected cell
on the other dataset, a rerun that does nothing, an eta change that keeps rung 0, and no
test-side file read by selection."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from fmdenoise.train.search import DROPPED_STATE

from ..helpers import DEMO, job_counts, prepare, ran, reduced_demo_config, snakemake

pytestmark = [pytest.mark.slow, pytest.mark.workflow]

MODELS = ("drunet", "care")
TARGETS = ["results/demo/tables/search.md", "results/demo/tables/hyperparameters.md"]
TARGETS += ["results/demo/studies/drunet/actin-demo.json", "results/demo/figures/transfer.png"]


def halving_config(path: Path, eta: int = 2) -> Path:
    """The reduced demo with two models, 2 losses x 2 learning rates, 40 steps and rungs at
    10 and 20 steps (eta 2), the first promotion within each loss (the method of the demo and
    config.yaml): 4 cells, then the better learning rate of each loss, then 1 to the full
    budget, on actin-demo; nucleus-demo trains one run per model at actin-demo's selected
    cell."""
    reduced_demo_config(path, steps=40, val_every=10, checkpoint_every=10)
    cfg = yaml.safe_load(path.read_text())
    demo = yaml.safe_load(DEMO.read_text())
    cfg["datasets"]["nucleus-demo"] = demo["datasets"]["nucleus-demo"]
    cfg["models"] = {m: cfg["models"][m] for m in MODELS}
    cfg["grid"].update(
        losses=["mae", "ssim"],
        learning_rates=[0.001, 0.0003],
        search="halving",
        halving={
            "eta": eta,
            "min_steps": 10,
            "budgets": [10, 20],
            "stratify": "loss",
            "stratify_rungs": 1,
        },
        sweep_datasets=["actin-demo"],
        study_datasets=["actin-demo"],
    )
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def searched(reduced_demo, tmp_path_factory):
    work = tmp_path_factory.mktemp("halving")
    prepare(reduced_demo[0], work)
    config = halving_config(work / "halving.yaml")
    proc = snakemake(work, *TARGETS, config=config)
    return work, config, proc.stdout + proc.stderr


def runs(work: Path, model: str) -> Path:
    return work / "results" / "demo" / "runs" / model / "actin-demo"


def test_rung_jobs_only_for_promoted_cells(searched):
    work, _config, out = searched
    counts = ran(out)
    # per model 4 cells at rung 0, 2 at rung 1; one finalist (+ drunet's scratch, rot runs);
    # nucleus-demo: one run per model, no rung
    assert counts["rung"] == 2 * (4 + 2) and counts["promote"] == 2 * 2
    assert counts["train"] == 2 + 2 + 2 and counts["select"] == 2 * 2
    assert counts["table_search"] == 1
    search = work / "results" / "demo" / "search"
    for model in MODELS:
        init = "pretrained" if model == "drunet" else "scratch"
        rung0 = json.loads((search / model / "actin-demo" / "rung0.json").read_text())
        rung1 = json.loads((search / model / "actin-demo" / "rung1.json").read_text())
        assert len(rung0["cells"]) == 4 and len(rung0["promoted"]) == 2
        # stratified: one learning rate of each loss went on, whatever the losses' ranking
        assert sorted(c["cell"]["loss"] for c in rung0["cells"] if c["promoted"]) == [
            "mae",
            "ssim",
        ]
        assert rung0["stratify"] == "loss" and rung1["stratify"] is None
        assert len(rung1["cells"]) == 2 and len(rung1["promoted"]) == 1
        assert {c["run"] for c in rung1["cells"]} == set(rung0["promoted"])
        sweep = [p for p in runs(work, model).glob(f"*/*/{init}/none/seed0")]
        assert len(sweep) == 4
        assert {str(p.relative_to(work)) for p in sweep if (p / "rung1.pt").exists()} == set(
            rung0["promoted"]
        )
        # no rung state stays: a cell not promoted keeps a note in place of its state (and no
        # last.pt), a promoted cell's state became a note once the next job continued it
        for cell in sweep:
            name = str(cell.relative_to(work))
            for rung, decided in enumerate((rung0, rung1)):
                if not (cell / f"rung{rung}.pt").exists():
                    continue
                note = torch.load(cell / f"rung{rung}.pt", weights_only=True)
                by = f"rung {rung + 1}" if rung == 0 else "train"
                reason = f"continued by {by}" if name in decided["promoted"] else None
                assert note["format"] == DROPPED_STATE, (name, rung)
                assert note["reason"] == (reason or f"not promoted at rung {rung}")
            assert not (cell / "last.pt").exists()
        finished = {str(p.relative_to(work)) for p in sweep if (p / "model.pt").exists()}
        assert finished == set(rung1["promoted"])
        final = json.loads((work / rung1["promoted"][0] / "run.json").read_text())
        assert final["steps_done"] == 40 and final["resumed_from"] == 20
        selected = json.loads(
            (work / "results" / "demo" / "selected" / model / "actin-demo.json").read_text()
        )
        assert selected["selected"]["run"] == rung1["promoted"][0]
        assert selected["search"]["cells"] == 4
        assert selected["search"]["steps"] == 2 * 10 + 1 * 20 + 1 * 40


def test_other_dataset_trains_the_selected_cell_only(searched):
    work = searched[0]
    res = work / "results" / "demo"
    for model in MODELS:
        source = json.loads((res / "selected" / model / "actin-demo.json").read_text())
        chosen = source["selected"]
        sel = json.loads((res / "selected" / model / "nucleus-demo.json").read_text())
        assert sel["transfer_from"]["dataset"] == "actin-demo" and "search" not in sel
        assert len(sel["candidates"]) == 1
        assert (sel["selected"]["loss"], sel["selected"]["lr"]) == (chosen["loss"], chosen["lr"])
        assert sel["selected"]["run"] == chosen["run"].replace("actin-demo", "nucleus-demo")
        run = json.loads((work / sel["selected"]["run"] / "run.json").read_text())
        assert run["steps_done"] == 40 and run["resumed_from"] is None
        assert len(list((res / "runs" / model / "nucleus-demo").rglob("run.json"))) == 1
        assert not (res / "search" / model / "nucleus-demo").exists()
    hyper = pd.read_csv(res / "tables" / "hyperparameters.csv")
    assert (hyper["dataset"] == "nucleus-demo").sum() == 2  # one row per model
    assert set(hyper["selected_on"]) == {"actin-demo"}  # the sweep's dataset chose every cell


def test_search_table(searched):
    work = searched[0]
    table = pd.read_csv(work / "results" / "demo" / "tables" / "search.csv")
    assert len(table) == 8 and table.groupby("model")["picked"].sum().to_dict() == {
        "care": 1,
        "drunet": 1,
    }
    assert table["psnr@10"].notna().all() and table["promoted@10"].sum() == 4
    assert table["psnr@40"].notna().sum() == 2
    spend = pd.read_csv(work / "results" / "demo" / "tables" / "search_spend.csv")
    assert list(spend["step_ratio"]) == [80 / 160, 80 / 160]
    assert "Successive halving" in (work / "results" / "demo" / "tables" / "search.md").read_text()


def test_rerun_does_nothing_and_eta_change_keeps_rung0(searched, tmp_path):
    work, config, _ = searched
    again = snakemake(work, *TARGETS, config=config)
    assert "Nothing to be done" in again.stdout + again.stderr
    changed = halving_config(tmp_path / "eta4.yaml", eta=4)  # the same rungs, other promotions
    dry = snakemake(work, "-n", *TARGETS, config=changed)
    counts = job_counts(dry.stdout + dry.stderr)
    # every promotion is decided again (2 models x 2 rungs); rung 0's training is kept
    assert "rung" not in counts and counts["promote"] == 4, counts


def test_transfer_across_the_two_datasets(searched):
    """evaluation.transfer (on in the demo): each model selected on one dataset applied to the
    other's test set by one job, the table's gains computed from the same metrics files."""
    work, _config, out = searched
    assert ran(out)["transfer"] == 2 * 2  # models x datasets trained on
    res = work / "results" / "demo"
    table = pd.read_csv(res / "tables" / "transfer.csv")
    assert len(table) == 2 * 2 * 2  # models x trained on x tested on (diagonal in-domain)
    row = table.set_index(["model", "trained_on", "tested_on"]).loc[
        ("drunet", "actin-demo", "nucleus-demo")
    ]
    moved = pd.read_csv(res / "transfer" / "drunet" / "actin-demo.csv")
    assert set(moved["tested_on"]) == {"nucleus-demo"} and len(moved) == row["n"] == 8
    raw = pd.read_csv(res / "metrics" / "raw" / "nucleus-demo.csv")["psnr"].mean()
    zero = pd.read_csv(res / "metrics" / "drunet-zeroshot" / "nucleus-demo.csv")["psnr"].mean()
    own = pd.read_csv(res / "metrics" / "drunet" / "nucleus-demo.csv")["psnr"].mean()
    assert row["gain_over_raw"] == pytest.approx(moved["psnr"].mean() - raw)
    assert row["gain_over_zeroshot"] == pytest.approx(moved["psnr"].mean() - zero)
    assert row["vs_in_domain"] == pytest.approx(moved["psnr"].mean() - own)
    assert moved["microssim"].notna().all()
    assert "**drunet**" in (res / "tables" / "transfer.md").read_text()
    assert not (res / "predictions" / "drunet-from-actin-demo").exists()  # nothing kept


def test_selection_reads_no_test_side_file(searched):
    """What the promote and select jobs actually read (Snakemake's own record of each job's
    inputs): rung summaries, promotions and run.json files, never data, metrics or predictions."""
    work = searched[0]
    records = [json.loads(p.read_text()) for p in (work / ".snakemake" / "metadata").iterdir()]
    chosen = [r for r in records if r.get("rule") in ("promote", "select")]
    assert {r["rule"] for r in chosen} == {"promote", "select"}
    for r in chosen:
        assert r["input"] and all(
            re.search(r"/(runs|search)/.*(rung\d+|run)\.json$", f) for f in r["input"]
        ), r["input"]
