"""The reduced rehearsal: the real config.yaml, one dataset at 512x512 in the published layout
(a numbered folder of unsplit stacks served with a directory listing), full-size models from
the official checkpoint containers served on 127.0.0.1, two training steps, through every rule;
every job's measured need within its request; the real config's requests covering the
rehearsal's measurements extrapolated to the real sizes."""

from __future__ import annotations

import pandas as pd
import pytest

from fmdenoise.config import load_config
from fmdenoise.costs.calibration import Calibration, shipped_table
from fmdenoise.costs.estimates import CostModel
from fmdenoise.costs.sizes import dataset_sizes
from fmdenoise.plan import rehearsal
from fmdenoise.plan.jobs import study_jobs
from fmdenoise.settings import StudySettings

from ..conftest import ROOT

#: the library takes the typed view of a validated config
typed = StudySettings.from_config

pytestmark = [pytest.mark.slow, pytest.mark.workflow]

OPTIONS = rehearsal.reduced_options()
EVERY_RULE = {
    "download", "fetch_folder", "convert_checkpoint", "ingest", "patches", "train", "select",
    "studies", "predict", "metrics", "table_main", "table_validation", "table_cost",
    "figure_examples", "figure_psnr_vs_cost", "answers",
}  # fmt: skip


@pytest.fixture(scope="module")
def rehearsed(tmp_path_factory):
    work = tmp_path_factory.mktemp("rehearsal")
    config = load_config(ROOT / "config.yaml")
    cfg_path, _log = rehearsal.run(config, work, OPTIONS)
    cfg = load_config(cfg_path)
    out = rehearsal.write_report(work, typed(cfg), shipped_table())
    return work, cfg, out


def test_every_rule_ran_at_real_size(rehearsed):
    _work, cfg, out = rehearsed
    jobs = pd.read_csv(out / "rehearsal.csv")
    assert set(jobs["rule"]) == EVERY_RULE
    manifest = pd.read_csv(out / "data" / "actin-confocal" / "manifest.csv")
    assert set(zip(manifest["height"], manifest["width"], strict=True)) == {(512, 512)}
    # the published layout: one numbered folder of two unsplit stacks, split here
    assert set(manifest["source"].str.split("#").str[0]) == {
        "actin-confocal-lowsnr.tif",
        "actin-confocal-highsnr.tif",
    }
    assert "split.test_fraction 0.1" in manifest["split_rule"].iloc[0]
    fetched = (out / "downloads" / "hagen" / "actin-confocal.sha256").read_text()
    assert "  03-actin-confocal/actin-confocal-lowsnr.tif" in fetched
    for table in ("main", "hyperparameters", "cost"):
        assert (out / "tables" / f"{table}.md").is_file()
    assert (out / "figures" / "examples" / "actin-confocal.png").is_file()
    # the three official containers were served, downloaded and converted
    assert {"drunet", "restormer", "kbnet"} <= {
        j.rsplit("/", 1)[-1] for j in jobs.loc[jobs["rule"] == "convert_checkpoint", "job"]
    }
    assert cfg["training"]["batch_size"] == 1
    assert "training batch size in this rehearsal: 1" in (out / "rehearsal_summary.md").read_text()
    assert "## Q1." in (out / "answers.md").read_text()


def test_no_job_needed_more_than_it_asked_for(rehearsed):
    _, _, out = rehearsed
    jobs = pd.read_csv(out / "rehearsal.csv")
    over_time = jobs[jobs["seconds"] > 60 * jobs["req_runtime_min"]]
    over_mem = jobs[jobs["max_rss_mb"] > jobs["req_mem_mb"]]
    assert over_time.empty, over_time.to_string()
    assert over_mem.empty, over_mem.to_string()
    assert (jobs["bytes_written"] > 0).all()


def test_real_requests_cover_the_rehearsal_extrapolated(rehearsed):
    """Needs priced with the rehearsal's measured rates at the real sizes stay within the real
    config's requests (priced with the shipped table x margin) for every measured figure."""
    _, _, out = rehearsed
    real = load_config(ROOT / "config.yaml")
    sizes = dataset_sizes(typed(real), "/nonexistent")
    measured = study_jobs(
        typed(real), sizes, CostModel(typed(real), Calibration.load(out / "calibration.csv"))
    )
    shipped = study_jobs(
        typed(real), sizes, CostModel(typed(real), Calibration.load(shipped_table()))
    )
    checked = 0
    for need, planned in zip(measured, shipped, strict=True):
        assert (need.rule, need.label) == (planned.rule, planned.label)
        if need.rule not in ("ingest", "patches", "metrics", "predict") or need.estimate.estimated:
            continue
        checked += 1
        assert need.estimate.seconds <= planned.request["runtime"] * 60, need
        assert need.estimate.mem_mb <= planned.request["mem_mb"], need
    assert checked >= 3 * len(real["datasets"])
