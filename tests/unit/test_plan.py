"""`fmdenoise plan`: job counts, hours, memory and disk of a small study computed by hand, the
counts against `snakemake -n`, estimates flagged, and the requests that follow input size."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import itertools
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fmdenoise.cli import main
from fmdenoise.config import load_config, validate
from fmdenoise.costs.calibration import Calibration, write_table
from fmdenoise.costs.requests import JobRequests
from fmdenoise.errors import ConfigError
from fmdenoise.models import GRAY_DEFAULTS
from fmdenoise.plan.report import format_plan, make_plan
from fmdenoise.settings import StudySettings
from fmdenoise.study import METHOD_KINDS, finetuned_models, study_datasets, transfer_source

from ..conftest import ROOT
from ..helpers import dry_run_requests

#: a fine-tuned model's test-set inference
KIND = METHOD_KINDS["finetuned"]

#: the library takes the typed view of a validated config
typed = StudySettings.from_config

HAND_TABLE = [
    {"kind": "flops", "name": "drunet", "device_type": "cpu", "value": 100.0, "unit": "GFLOP"},
    {"kind": "flops", "name": "care_unet", "device_type": "cpu", "value": 10.0, "unit": "GFLOP"},
    {"kind": "params", "name": "drunet", "device_type": "cpu", "value": 1_000_000, "unit": "n"},
    {"kind": "params", "name": "care_unet", "device_type": "cpu", "value": 100_000, "unit": "n"},
    {"kind": "train", "name": "drunet", "device_type": "cuda", "device": "GPU-X",
     "precision": "bf16", "batch": 4, "patch": 128, "value": 0.5, "unit": "s/step",
     "peak_mem_mb": 2000},
    {"kind": "train", "name": "care_unet", "device_type": "cuda", "device": "GPU-X",
     "precision": "bf16", "batch": 4, "patch": 128, "value": 0.1, "unit": "s/step"},
    {"kind": "infer", "name": "drunet", "device_type": "cuda", "device": "GPU-X", "value": 2.0,
     "unit": "s/Mpx", "peak_mem_mb": 1000},
    {"kind": "infer", "name": "care_unet", "device_type": "cuda", "device": "GPU-X", "value": 1.0,
     "unit": "s/Mpx"},
    {"kind": "infer", "name": "bm3d", "device_type": "cpu", "device": "CPU-Y", "value": 50.0,
     "unit": "s/Mpx"},
    {"kind": "rule", "name": "ingest", "device_type": "cpu", "device": "CPU-Y", "value": 1.0,
     "unit": "s/Mpx", "mpx": 4, "peak_mem_mb": 300},
    {"kind": "rule", "name": "patches", "device_type": "cpu", "device": "CPU-Y", "value": 2.0,
     "unit": "s/Mpx", "mpx": 2, "peak_mem_mb": 300},
    {"kind": "rule", "name": "metrics", "device_type": "cpu", "device": "CPU-Y", "value": 0.5,
     "unit": "s/Mpx", "mpx": 2, "peak_mem_mb": 300},
]  # fmt: skip


def small_config():
    return validate(
        {
            "study": "plan-test",
            "results": "results/plan-test",
            "downloads": {
                "a": {"url": "https://example.org/a.zip"},
                "w.pth": {"url": "https://example.org/w.pth", "kind": "checkpoint"},
            },
            "datasets": {
                "ds": {
                    "source": "a",
                    "train": {"low": "{dataset}-lowsnr.tif", "gt": "{dataset}-highsnr.tif"},
                    "test": {"low": "t/{dataset}-lowsnr.tif", "gt": "t/{dataset}-highsnr.tif"},
                    "expected": {"train_pairs": 10, "test_pairs": 4, "height": 1000, "width": 1000},
                }
            },
            "split": {"val_fraction": 0.2},
            "patches": {"size": 128, "per_image": 10},
            "models": {
                "drunet": {
                    "arch": "drunet",
                    "kwargs": copy.deepcopy(GRAY_DEFAULTS["drunet"]),
                    "pretrained": {"source": "download", "download": "w.pth", "format": "kair"},
                },
                "care": {"arch": "care_unet", "pretrained": {"source": "none"}},
            },
            "grid": {
                "losses": ["mae", "mse"],
                "learning_rates": [0.001],
                "seeds": [0],
                "scratch_study": True,
                "augmentation_study": False,
            },
            "training": {"steps": 1000, "batch_size": 4, "val_every": 500},
            "resources": {
                "train": {"cpus": 4, "gpu": 1, "runtime": 60, "mem_mb": 8000},
                "predict": {"cpus": 2, "gpu": 1},
            },
        }
    )


@pytest.fixture
def hand_table(tmp_path):
    path = tmp_path / "calibration.csv"
    write_table(HAND_TABLE, path)
    return path


def test_plan_matches_hand_computation(hand_table, tmp_path):
    plan = make_plan(typed(small_config()), Calibration.load(hand_table), workdir=tmp_path)
    counts = {rule: s["jobs"] for rule, s in plan["rules"].items()}
    assert counts == {
        "download": 2, "extract": 1, "convert_checkpoint": 1, "ingest": 1, "patches": 1,
        "train": 5, "select": 2, "studies": 1, "predict": 6, "metrics": 6,
        "figure_examples": 1, "table_main": 1, "table_cost": 1, "table_validation": 2,
        "figure_psnr_vs_cost": 1, "figure_learning_curves": 1, "answers": 1,
    }  # fmt: skip
    assert plan["jobs"] == 34
    assert plan["submissions"] == 28  # each metrics job rides with its predict job
    # train: 1000 steps x step + 3 validations x 20 val patches (2 val images x 10) forward
    drunet_run = 1000 * 0.5 + 3 * 20 * 0.5 / 4 / 3  # 502.5 s
    care_run = 1000 * 0.1 + 3 * 20 * 0.1 / 4 / 3  # 100.5 s
    train = 3 * drunet_run + 2 * care_run  # 2 losses + scratch study; CARE: 2 losses
    # zero-shot + fine-tuned DRUNet, CARE; in 512 px tiles overlapping by 64, a 1000 px side
    # takes 3 tiles (starts 0, 448, 488): 1536^2 pixels processed per 1000^2
    tiles = (3 * 512 / 1000) ** 2
    predict = (2.0 * 4 * tiles + 30) * 2 + (1.0 * 4 * tiles + 30)
    assert plan["rules"]["train"]["gpu_hours"] == pytest.approx(train / 3600)
    assert plan["rules"]["predict"]["gpu_hours"] == pytest.approx(predict / 3600)
    assert plan["gpu_hours"] == pytest.approx((train + predict) / 3600)
    # BM3D and BM3D-VST (priced by the BM3D row) over the job's 2 CPUs: 50 s/Mpx x 4 Mpx / 2
    # workers, 2 CPUs held
    bm3d_cpu_s = 2 * (50 * 4 / 2 * 2)
    assert plan["rules"]["predict"]["cpu_hours"] * 3600 == pytest.approx(
        bm3d_cpu_s + 2 * 2 * (8 * tiles + 30) + 2 * (4 * tiles + 30) + 2 * (5 + 0.2), rel=1e-6
    )
    assert plan["rules"]["train"]["longest_job_h"] == pytest.approx(drunet_run / 3600)
    assert plan["rules"]["train"]["runtime_request_h"] == 1.0  # config floor (60 min) holds
    assert plan["rules"]["ingest"]["longest_job_h"] == pytest.approx((10 + 1.0 * 28) / 3600)
    # disk: data = (low + gt) x (10 train + 4 test) Mpx float32; a finished run keeps model.pt
    # (params x 4 bytes); while it runs, last.pt (weights, two Adam moments, best: x 16 bytes)
    assert plan["disk_gb_by_stage"]["data"] == pytest.approx(2 * 14 * 4e6 / 1e9)
    assert plan["disk_gb_by_stage"]["runs"] == pytest.approx((3 * 1e6 + 2 * 1e5) * 4 / 1e9)
    # every one of the 5 runs may be unfinished at once (concurrent_jobs 16 by default)
    in_flight = (3 * 1e6 + 2 * 1e5) * 16 / 1e9
    assert plan["disk_peak_gb"] == pytest.approx(plan["disk_gb"] + in_flight)
    config = small_config()
    config["planning"]["concurrent_jobs"] = 2  # the two largest: DRUNet runs
    two = make_plan(typed(config), Calibration.load(hand_table), workdir=tmp_path)
    assert two["disk_peak_gb"] == pytest.approx(two["disk_gb"] + 2 * 1e6 * 16 / 1e9)
    # grid.keep_weights: selected: one candidate per model keeps its weights, the other's
    # become a 1 kB note (its weights are held until selection: the peak counts them)
    config["grid"]["keep_weights"] = "selected"
    kept = make_plan(typed(config), Calibration.load(hand_table), workdir=tmp_path)
    runs = (2 * 1e6 + 1e5) * 4 + 2 * 1e3  # DRUNet selected + scratch study, CARE selected
    assert kept["disk_gb_by_stage"]["runs"] == pytest.approx(runs / 1e9)
    assert kept["disk_awaiting_selection_gb"] == pytest.approx((1e6 + 1e5) * 4 / 1e9)
    assert plan["disk_gb_by_stage"]["patches"] == pytest.approx(2 * 100 * 128**2 * 4 / 1e9)
    assert plan["estimates"] == []  # every figure was measured
    assert plan["datasets"]["ds"]["source"] == "expected"


def test_plan_of_a_sweep_on_one_dataset_by_hand(hand_table, tmp_path):
    """grid.sweep_datasets: the grid on ``ds`` only; ``ds2`` trains one run per model at the
    cell selected on ``ds`` (the scratch study runs on both datasets)."""
    config = small_config()
    config["datasets"]["ds2"] = copy.deepcopy(config["datasets"]["ds"])
    config["grid"]["sweep_datasets"] = ["ds"]
    plan = make_plan(typed(validate(config)), Calibration.load(hand_table), workdir=tmp_path)
    counts = {rule: s["jobs"] for rule, s in plan["rules"].items()}
    # drunet: 2 cells on ds + 1 on ds2 + 2 scratch studies; care: 2 + 1
    assert counts["train"] == 5 + 3 and counts["select"] == 4 and counts["studies"] == 2
    drunet_run = 1000 * 0.5 + 3 * 20 * 0.5 / 4 / 3
    care_run = 1000 * 0.1 + 3 * 20 * 0.1 / 4 / 3
    assert plan["rules"]["train"]["gpu_hours"] == pytest.approx(
        (5 * drunet_run + 3 * care_run) / 3600
    )
    assert plan["sweep_datasets"] == ["ds"]
    assert "(full search on ds; 1 dataset(s) at its selection)" in format_plan(plan)
    with pytest.raises(ConfigError, match=r"grid\.sweep_datasets: 'nope' is not a dataset"):
        validate({**config, "grid": {**config["grid"], "sweep_datasets": ["nope"]}})


def test_unmeasured_gpu_is_an_estimate_and_says_so(hand_table, tmp_path, capsys):
    table = [r for r in HAND_TABLE if not (r["kind"] == "train" and r["name"] == "drunet")]
    write_table(table, tmp_path / "partial.csv")
    plan = make_plan(typed(small_config()), Calibration.load(tmp_path / "partial.csv"), tmp_path)
    assert plan["rules"]["train"]["estimated"] and not plan["rules"]["predict"]["estimated"]
    assert len(plan["estimates"]) == 1 and "TFLOP/s" in plan["estimates"][0]
    # 3 x 100 GFLOP x 4 patches / (312 TFLOP/s x 0.25) per step
    step = 3 * 100e9 * 4 / (312e12 * 0.25)
    run = 1000 * step + 3 * 20 * step / 4 / 3
    assert plan["rules"]["train"]["gpu_hours"] == pytest.approx((3 * run + 2 * 100.5) / 3600)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(small_config()))
    assert (
        main(["plan", str(tmp_path / "c.yaml"), "--calibration", str(tmp_path / "partial.csv")])
        == 0
    )
    out = capsys.readouterr().out
    assert re.search(r"^train .*ESTIMATE", out, re.M) and "ESTIMATE: estimate (" in out


def test_plan_json_cli(hand_table, tmp_path, capsys):
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(small_config()))
    assert main(["plan", str(tmp_path / "c.yaml"), "--json", "--calibration", str(hand_table)]) == 0
    plan = json.loads(capsys.readouterr().out)
    for key in ("jobs", "submissions", "gpu_hours", "cpu_hours", "disk_gb", "rules"):
        assert key in plan
    assert plan["rules"]["train"]["jobs"] == 5


def test_measured_sizes_replace_expected_ones(hand_table, tmp_path):
    config = small_config()
    data = tmp_path / config["results"] / "data" / "ds"
    data.mkdir(parents=True)
    rows = ["image,split,role,path,height,width,dtype,sha256,source"]
    for i, split in enumerate(["train", "train", "val", "test"]):
        for role in ("low", "gt"):
            rows.append(f"i{i},{split},{role},x,2000,1000,float32,0,s")
    (data / "manifest.csv").write_text("\n".join(rows) + "\n")
    plan = make_plan(typed(config), Calibration.load(hand_table), workdir=tmp_path)
    assert plan["datasets"]["ds"] == {"source": "manifest", "train_mpx": 6.0, "test_mpx": 2.0}
    req = JobRequests(
        typed({**config, "planning": {**config["planning"], "calibration": str(hand_table)}})
    )
    # predict of DRUNet on the measured 2 Mpx test side: (2 s/Mpx x 2 Mpx + 30 s) x 1.5
    r = req.request("predict", {"method": "drunet", "dataset": "ds"}, str(data))
    assert r["gpu"] == 1 and r["runtime"] == 60  # 51 s x 1.5 < the 60 min floor
    assert req.request("predict", {"method": "bm3d", "dataset": "ds"}, str(data))["gpu"] == 0
    config["resources"]["predict"]["runtime"] = 1
    req = JobRequests(
        typed({**config, "planning": {**config["planning"], "calibration": str(hand_table)}})
    )
    r = req.request("predict", {"method": "bm3d", "dataset": "ds"}, str(data))
    assert r["runtime"] == -(-(50 * 2 / 2) * 1.5 // 60)  # 50 s/Mpx x 2 Mpx / 2 CPUs, x 1.5


def snakemake_counts(configfile, workdir):
    """Job counts of ``snakemake -n`` in an empty ``workdir`` (nothing done yet)."""
    out = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "-s", str(ROOT / "Snakefile"), "--directory",
         str(workdir), "--configfile", str(ROOT / configfile), "--quiet", "rules"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    table = out.split("Job stats:")[1]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


@pytest.mark.parametrize(
    "configfile,search",
    [("config.yaml", None), ("demo/config.yaml", None), ("config.yaml", "halving")],
)
def test_plan_counts_equal_snakemake_dry_run(configfile, search, tmp_path):
    config = load_config(ROOT / configfile)
    if search is None:  # the config's own (the demo searches by halving)
        search = config["grid"]["search"]
    elif search != config["grid"]["search"]:
        config["grid"]["search"] = "halving"
        configfile = tmp_path / "halving.yaml"
        configfile.write_text(yaml.safe_dump(config, sort_keys=False))
    plan = make_plan(typed(config), workdir=ROOT / "nonexistent")
    dry = snakemake_counts(configfile, tmp_path)
    dry.pop("all"), dry.pop("total")
    ours = {rule: s["jobs"] for rule, s in plan["rules"].items()}
    # the scratch/augmentation runs exist only after selection: snakemake -n cannot list them
    grid = config["grid"]
    studies = (
        len(finetuned_models(typed(config)))
        * len(study_datasets(typed(config)))
        * len(grid["seeds"])
    )
    studies *= grid["scratch_study"] + grid["augmentation_study"]
    ours["train"] -= studies
    # nor the runs of datasets outside grid.sweep_datasets (at the cell selected elsewhere)
    swept = [d for d in config["datasets"] if transfer_source(typed(config), d) is None]
    ours["train"] -= len(config["models"]) * (len(config["datasets"]) - len(swept))
    if search == "halving":  # only rung 0 is known before the first promotion
        cells = len(grid["losses"]) * len(grid["learning_rates"]) * len(grid["seeds"])
        ours["rung"] = cells * len(config["models"]) * len(swept)
        ours.pop("train")
    assert ours == dry


#: rules whose jobs `snakemake -n` lists only in part before the checkpoints (the rungs after
#: the first promotion, the runs after selection): their distinct requests are compared
UNLISTED = ("rung", "train")


@pytest.mark.parametrize("configfile", ["config.yaml", "demo/config.yaml"])
def test_plan_requests_equal_every_job_of_snakemake_dry_run(configfile, tmp_path):
    """What the plan says each rule's jobs ask for (CPUs, memory, runtime, GPUs) is what every
    job of `snakemake -n` requests: one table (fmdenoise.costs.rules) read by both. --cores
    high enough that Snakemake does not lower the threads of a job to the cores given."""
    out = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--cores", "1024", "-s", str(ROOT / "Snakefile"),
         "--directory", str(tmp_path), "--configfile", str(ROOT / configfile)],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    dry = dry_run_requests(out)
    plan = make_plan(typed(load_config(ROOT / configfile)), workdir=ROOT / "nonexistent")
    assert set(dry) <= set(plan["rules"]) and set(plan["rules"]) - set(dry) <= set(UNLISTED)
    for rule, requests in dry.items():
        planned = plan["rules"][rule]["requests"]
        if rule in UNLISTED:
            drop = [{k: v for k, v in r.items() if k != "jobs"} for r in requests]
            assert drop == [{k: v for k, v in r.items() if k != "jobs"} for r in planned], rule
        else:
            assert requests == planned, rule


def test_every_rule_has_one_row_in_the_resources_table():
    """Every rule of rules/*.smk (but the target rule all) is in fmdenoise.costs.rules.RULES,
    and asks through it: its threads, retries and resources name the rule itself."""
    from fmdenoise.costs.rules import RULES

    names = []
    for smk in sorted((ROOT / "rules").glob("*.smk")):
        for block in re.split(r"\n(?=(?:rule|checkpoint) )", smk.read_text()):
            name = re.match(r"(?:rule|checkpoint) (\w+)", block)
            if not name:
                continue
            names.append(name[1])
            assert f'rule_threads("{name[1]}")' in block, name[1]
            assert f'rule_retries("{name[1]}")' in block, name[1]
            assert re.search(rf'_resources\("{name[1]}"\)|transfer_resources\(\)', block)
    assert sorted(names) == sorted(RULES)


class Resources(dict):
    """As a job script sees ``snakemake.resources``: items(), private keys included."""


def fake_job(log, rule, threads, resources, outputs):
    from types import SimpleNamespace

    return SimpleNamespace(
        log=[log], rule=rule, threads=threads, resources=Resources(resources), output=outputs
    )


def test_efficiency_reads_the_request_every_job_records(tmp_path):
    """A job records what it was given beside its benchmark file (log_to with the job); the
    efficiency report reads those records: plain and grouped jobs alike, no console log."""
    from fmdenoise.logs import log_to
    from fmdenoise.plan.efficiency import collect, read_requests
    from fmdenoise.process import benchmark_of

    res = tmp_path / "results" / "r"
    train = fake_job(
        str(res / "logs" / "train" / "x.log"), "train", 8,
        {"_cores": 8, "_nodes": 1, "tmpdir": "/tmp", "mem_mb": 32000, "runtime": 1440, "gpu": 1},
        [str(res / "runs" / "x" / "model.pt"), str(res / "runs" / "x" / "run.json")],
    )  # fmt: skip
    metrics = fake_job(
        str(res / "logs" / "metrics" / "raw" / "d.log"), "metrics", 1,
        {"mem_mb": 4000, "runtime": 15}, [str(res / "metrics" / "raw" / "d.csv")],
    )  # fmt: skip
    for job in (train, metrics):
        Path(job.log[0]).parent.mkdir(parents=True)  # Snakemake makes the log's folder
        with log_to(job.log[0], job):
            pass
    assert benchmark_of(train.log[0]) == res / "benchmarks" / "train" / "x.tsv"
    assert benchmark_of(tmp_path / "elsewhere.log") is None
    jobs = {j["rule"]: j for j in read_requests(res)}
    assert set(jobs) == {"train", "metrics"}
    assert jobs["train"]["req_mem_mb"] == 32000 and jobs["train"]["req_runtime_min"] == 1440
    assert jobs["train"]["req_gpu"] == 1 and jobs["train"]["threads"] == 8
    assert jobs["train"]["outputs"] == train.output
    assert jobs["metrics"]["benchmark"] == res / "benchmarks" / "metrics" / "raw" / "d.tsv"
    assert jobs["metrics"]["req_runtime_min"] == 15 and jobs["metrics"]["req_gpu"] == 0
    # only finished jobs (with a benchmark file) are measured
    (res / "benchmarks" / "train" / "x.tsv").write_text("s\tmax_rss\n12.5\t300\n")
    (res / "runs" / "x").mkdir(parents=True)
    (res / "runs" / "x" / "model.pt").write_bytes(b"x" * 100)
    table = collect(tmp_path, Path("results/r"))
    assert list(table["job"]) == ["train/x"] and table["bytes_written"].iloc[0] == 100
    assert table["seconds"].iloc[0] == 12.5 and table["req_mem_mb"].iloc[0] == 32000


def test_every_rule_benchmarks_beside_its_log():
    """The convention request records rely on: each rule's benchmark path is its log path
    with logs -> benchmarks and .log -> .tsv."""
    rules = 0
    for smk in sorted((ROOT / "rules").glob("*.smk")):
        for block in re.split(r"\n(?=(?:rule|checkpoint) )", smk.read_text()):
            name = re.match(r"(?:rule|checkpoint) (\w+)", block)
            if not name:
                continue
            log = re.search(r"log:\s*\n\s*(.+?),?\n", block)[1]
            bench = re.search(r"benchmark:\s*\n\s*(.+?),?\n", block)[1]
            assert bench == log.replace("/logs/", "/benchmarks/").replace('.log"', '.tsv"'), name[1]
            rules += 1
    assert rules >= 25


def test_rehearsal_through_slurm_stops_before_rendering_when_no_node_fits(tmp_path, monkeypatch):
    """On a 2-CPU site the reduced rehearsal's train and predict jobs (8 CPUs each in
    config.yaml) would pend for ever: the rehearsal says so and renders nothing; with the
    requests lowered by --set it passes the check."""
    from fmdenoise.errors import ConfigError
    from fmdenoise.plan import rehearsal

    two_cpus = {"*": [{"cpus": 2, "mem_mb": 18000, "gpus": 1}]}
    monkeypatch.setattr(rehearsal, "partition_nodes", lambda: two_cpus)
    monkeypatch.setattr(rehearsal, "partition_limits", lambda: {"*": None})
    config = load_config(ROOT / "config.yaml")
    opts = rehearsal.reduced_options()
    with pytest.raises(ConfigError) as err:
        rehearsal.run(config, tmp_path, opts, ["--profile", "x"], site_check=True)
    lines = str(err.value).splitlines()[1:]
    assert sorted(line.split(":")[0] for line in lines) == ["predict", "train"]
    assert "--set resources.<rule>.<key>" in str(err.value)
    assert list(tmp_path.iterdir()) == []  # nothing rendered or served
    fitted = copy.copy(opts)
    lowered = ["resources.train.cpus=2", "resources.train.mem_mb=12000", "resources.predict.cpus=2"]
    fitted.overrides = [*opts.overrides, *lowered]
    rehearsal.check_site(config, fitted, tmp_path)  # no error
    monkeypatch.setattr(rehearsal, "partition_nodes", lambda: None)
    monkeypatch.setattr(rehearsal, "partition_limits", lambda: None)
    rehearsal.check_site(config, opts, tmp_path)  # no SLURM to ask: nothing checked


def test_cpu_rehearsal_tiles_whole_image_models_to_fit_the_machine():
    """A 2048x2048 dataset on a 24 GB CPU machine: Restormer's whole-image predict job (tile
    null) would ask for ~35 GB, so the rehearsal predicts it in the largest 256-multiple tile
    whose request (the workflow's own, JobRequests) fits, and says so; the other models keep
    their tiles, a machine with the memory keeps whole images, and a machine too small for any
    tile is a clear error."""
    from fmdenoise.plan import rehearsal

    config = load_config(ROOT / "config.yaml")
    opts = rehearsal.Options(datasets=["nucleus"], scale=1.0, pair_scale=0.05)

    def predict_mb(cfg):
        wildcards = {"dataset": "nucleus", "method": "restormer"}
        return JobRequests(typed(cfg)).request("predict", wildcards, "/nonexistent")["mem_mb"]

    cfg = rehearsal.rehearsal_config(config, "http://127.0.0.1:1", opts)
    whole = predict_mb(cfg)
    assert whole > 24000  # what makes the change necessary
    notes = rehearsal.fit_tiles(cfg, 24000)
    tile = cfg["models"]["restormer"]["tile"]
    assert tile % rehearsal.TILE_STEP == 0 and tile < 2048
    assert predict_mb(cfg) <= 24000
    bigger = copy.deepcopy(cfg)
    bigger["models"]["restormer"]["tile"] = tile + rehearsal.TILE_STEP
    assert predict_mb(bigger) > 24000  # the largest that fits
    assert len(notes) == 1 and notes[0].startswith("restormer:")
    assert f"{whole} MB" in notes[0] and f"{tile} px tiles" in notes[0]
    assert [m for m in cfg["models"] if cfg["models"][m].get("tile") is not None] == ["restormer"]
    assert load_config(ROOT / "config.yaml")["models"]["restormer"]["tile"] is None

    roomy = rehearsal.rehearsal_config(config, "http://127.0.0.1:1", opts)
    assert rehearsal.fit_tiles(roomy, whole) == [] and roomy["models"]["restormer"]["tile"] is None
    with pytest.raises(ConfigError, match="restormer's predict job needs"):
        rehearsal.fit_tiles(rehearsal.rehearsal_config(config, "http://127.0.0.1:1", opts), 1000)


def test_rehearsal_rates_are_per_megapixel_processed(tmp_path):
    """A tiled prediction processes more pixels than the image has (512 px tiles overlapping by
    64 on a 2048 px image: 1.5625x); the rehearsal's calibration row is per megapixel processed,
    as `fmdenoise calibrate`'s whole-image rows are, with its peak memory at one tile's size;
    BM3D's rows are per image megapixel."""
    import pandas as pd

    from fmdenoise.evaluate.tiling import tiling_overhead
    from fmdenoise.plan.efficiency import _inference_rows

    config = load_config(ROOT / "config.yaml")
    results = tmp_path / config["results"]
    for method, tile in (("drunet", 512), ("restormer-zeroshot", None), ("bm3d", 512)):
        timing = {"images": 2, "megapixels": 2 * 2048**2 / 1e6, "seconds_per_megapixel": 100.0}
        timing |= {"tile": tile, "overlap": 64, "device_type": "cpu", "device": "cpu"}
        timing |= {"threads": 2}
        path = results / "predictions" / method / "nucleus" / "timing.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(timing))
    methods = ("drunet", "restormer-zeroshot", "bm3d")
    jobs = pd.DataFrame(
        {"rule": "predict", "job": [f"predict/{m}/nucleus" for m in methods],
         "max_rss_mb": [900.0, 9000.0, 2000.0], "seconds": [1.0, 1.0, 1.0]}
    )  # fmt: skip
    rows = {r["name"]: r for r in _inference_rows(results, typed(config), jobs)}
    assert tiling_overhead(2048**2, 512, 64) == 1.5625  # 5 tiles per side: 2560^2 / 2048^2
    assert rows["drunet"]["value"] == pytest.approx(100.0 / 1.5625)
    assert rows["drunet"]["mpx"] == pytest.approx(512**2 / 1e6)
    assert rows["drunet"]["peak_mem_mb"] == 900.0
    assert rows["restormer"]["value"] == pytest.approx(100.0)  # whole images
    assert rows["restormer"]["mpx"] == pytest.approx(2048**2 / 1e6)
    # BM3D takes whole images whatever evaluation.tile says (timing.json records it)
    assert rows["bm3d"]["value"] == pytest.approx(100.0) and rows["bm3d"]["tile"] is None


def test_rehearsal_through_slurm_tiles_to_the_largest_node(monkeypatch, tmp_path):
    """Through SLURM a CPU rehearsal fits whole-image models to the memory of the predict
    partition's largest node (sinfo): a 2048x2048 dataset on 18.9 GB nodes passes the site
    check with Restormer in 1280 px tiles, where its whole-image request (35 GB) would pend."""
    from fmdenoise.plan import rehearsal

    nodes = {
        "*": [{"cpus": 2, "mem_mb": 12000, "gpus": 0}, {"cpus": 2, "mem_mb": 18900, "gpus": 0}]
    }
    monkeypatch.setattr(rehearsal, "partition_nodes", lambda: nodes)
    monkeypatch.setattr(rehearsal, "partition_limits", lambda: {"*": None})
    config = load_config(ROOT / "config.yaml")
    lowered = ["resources.train.cpus=2", "resources.train.mem_mb=12000", "resources.predict.cpus=2"]
    opts = rehearsal.Options(datasets=["nucleus"], scale=1.0, pair_scale=0.05, overrides=lowered)
    checked = rehearsal.check_site(config, opts, tmp_path)
    assert checked.mem_mb == 18900 and opts.mem_mb is None
    cfg = rehearsal.rehearsal_config(config, "http://127.0.0.1:1", checked)
    assert rehearsal.fit_tiles(cfg, checked.mem_mb) and cfg["models"]["restormer"]["tile"] == 1280
    whole = dataclasses.replace(opts, mem_mb=40000)  # a memory set by the caller is kept
    with pytest.raises(ConfigError, match="predict: a job asks for 2 CPUs, 35342 MB"):
        rehearsal.check_site(config, whole, tmp_path)


def test_cpu_rehearsal_prices_its_jobs_with_this_machines_rates(tmp_path, monkeypatch):
    """A CPU rehearsal on a machine slower than the calibration table's would outrun its
    predict requests: with ``calibrate_here`` it first measures this machine's
    inference rates (the config's architectures and BM3D; the measurement processes are faked
    here at 1.5x the shipped rates), writes the shipped table with those rows replaced, prices
    the rehearsal with it (planning.calibration of the rehearsal config) and says so in its
    notes; the other rows of the table are kept."""
    from fmdenoise.costs.estimates import CostModel
    from fmdenoise.plan import calibrate, rehearsal

    shipped = Calibration.load(None)
    asked = []

    def fake_measurement(args, timeout=3600):
        name = "bm3d" if args[0] == "bm3d" else args[2]
        asked.append(name)
        value = 1.5 * shipped.infer(name, "cpu").value
        return [{"kind": "infer", "name": name, "device_type": "cpu", "device": "cpu",
                 "value": value, "unit": "s/Mpx", "mpx": 0.262144}]  # fmt: skip

    monkeypatch.setattr(calibrate, "run_measurement", fake_measurement)
    config = load_config(ROOT / "config.yaml")
    table, notes = rehearsal.calibrate_machine(config, tmp_path / "machine.csv", progress=str)
    archs = sorted({m["arch"] for m in config["models"].values()})
    assert sorted(asked) == sorted([*archs, "bm3d"])
    here = Calibration.load(table)
    for name in [*archs, "bm3d"]:
        slower = 1.5 * shipped.infer(name, "cpu").value
        assert here.infer(name, "cpu").value == pytest.approx(slower, rel=1e-5)  # 6 digits
    assert len(notes) == len(archs) + 1 and all("(1.50x)" in n for n in notes)

    def others(table):
        keep = [r for r in table.rows if r["kind"] != "infer" or r["device_type"] != "cpu"]
        return [(r["kind"], r["name"], r["device_type"], r["value"]) for r in keep]

    assert others(here) == others(shipped)
    cfg = rehearsal.rehearsal_config(config, "http://x", rehearsal.reduced_options())
    before = CostModel(typed(cfg), shipped).predict("kbnet", KIND, 1.0, 512 * 512, "cpu", 2)
    after = CostModel(typed(cfg), here).predict("kbnet", KIND, 1.0, 512 * 512, "cpu", 2)
    assert after.seconds - 10 == pytest.approx(1.5 * (before.seconds - 10), rel=1e-5)

    # run(): measured before the rehearsal config is written, which then prices with it
    render = lambda c, d, u, o: rehearsal.rehearsal_config(c, u, o)  # noqa: E731 (no files)
    monkeypatch.setattr(rehearsal, "prepare", render)
    monkeypatch.setattr(rehearsal, "serve", lambda d: contextlib.nullcontext("http://x"))
    done = subprocess.CompletedProcess([], 0, "", "")
    monkeypatch.setattr(rehearsal.subprocess, "run", lambda *a, **k: done)
    opts = dataclasses.replace(rehearsal.reduced_options(), calibrate_here=True)
    cfg_path, _ = rehearsal.run(config, tmp_path / "work", opts)
    results = tmp_path / "work" / "results" / "rehearsal"
    written = yaml.safe_load(cfg_path.read_text())
    assert written["planning"]["calibration"] == str((results / rehearsal.MACHINE_TABLE).resolve())
    assert "(1.50x)" in (results / "rehearsal_notes.txt").read_text()


def test_rehearse_command_measures_here_unless_given_a_table(tmp_path, monkeypatch):
    """`fmdenoise rehearse` on CPU measures this machine's rates first; `--calibration TABLE`
    prices with TABLE as it is (no measuring), and the report starts from that table."""
    from fmdenoise.plan import rehearsal

    seen = {}

    def fake_run(config, workdir, opts, run_args, site_check=False):
        seen["opts"] = opts
        cfg = rehearsal.rehearsal_config(config, "http://x", opts)
        path = tmp_path / "rehearsal.yaml"
        path.write_text(yaml.safe_dump(cfg))
        return path, ""

    def fake_report(workdir, cfg, base):
        seen["base"] = base
        (tmp_path / "rehearsal_summary.md").write_text("summary\n")
        return tmp_path

    monkeypatch.setattr(rehearsal, "run", fake_run)
    monkeypatch.setattr(rehearsal, "write_report", fake_report)
    config = str(ROOT / "config.yaml")
    main(["rehearse", config, "--reduced", "--workdir", str(tmp_path)])
    assert seen["opts"].calibrate_here
    assert not any(o.startswith("planning.calibration=") for o in seen["opts"].overrides)
    table = tmp_path / "mine.csv"
    write_table(Calibration.load(None).rows, table)
    main(["rehearse", config, "--reduced", "--workdir", str(tmp_path), "--calibration", str(table)])
    assert not seen["opts"].calibrate_here
    assert f"planning.calibration={table.resolve()}" in seen["opts"].overrides
    assert seen["base"] == table.resolve()


def test_calibration_with_a_budget_keeps_what_it_measured(tmp_path, monkeypatch):
    """A GPU node's time limit: a failing measurement is skipped, none starts after the budget,
    the table holds every row measured so far after each measurement, and the rows of other
    device types and the device-independent FLOP counts are merged, not duplicated."""
    from fmdenoise.plan import calibrate

    def fake(job, timeout):
        if job[0] == "boom":
            raise RuntimeError("measurement boom failed:\nValueError: no such thing")
        row = {"kind": job[0], "name": job[1], "device_type": job[2], "value": 1.0}
        return [{**row, "unit": "s", "device": "fake"}]

    clock = itertools.chain([0.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0], itertools.repeat(50.0))
    monkeypatch.setattr(calibrate, "run_measurement", fake)
    monkeypatch.setattr(calibrate.time, "perf_counter", lambda: next(clock))
    saved, lines = [], []
    jobs = [["train", "a", "cuda"], ["boom"], ["flops", "a", "cpu"], ["infer", "a", "cuda"]]
    rows = calibrate.run_measurements(
        jobs, lines.append, budget_s=10, on_rows=lambda r: saved.append(len(r))
    )
    assert [r["kind"] for r in rows] == ["train", "flops"]
    assert saved == [1, 2]
    assert "skipped (ValueError: no such thing)" in lines[1]
    assert "not started (budget of 10 s spent)" in lines[3]
    with pytest.raises(RuntimeError, match="boom"):  # without a budget a failure is an error
        calibrate.run_measurements([["boom"]], lines.append)

    old = tmp_path / "old.csv"
    write_table(
        [
            {"kind": "flops", "name": "a", "device_type": "cpu", "value": 2.0},
            {"kind": "train", "name": "a", "device_type": "cpu", "value": 9.0},
            {"kind": "train", "name": "a", "device_type": "cuda", "value": 7.0},
        ],
        old,
    )
    fresh = [
        {"kind": "flops", "name": "a", "device_type": "cpu", "value": 2.0},
        {"kind": "train", "name": "a", "device_type": "cuda", "value": 1.0},
    ]
    monkeypatch.setattr(calibrate, "calibrate", lambda *a, **k: fresh)
    out = calibrate.calibrate_table("cuda", tmp_path / "new.csv", old, 10, print)
    got = [(r["kind"], r["device_type"], float(r["value"])) for r in Calibration.load(out).rows]
    assert sorted(got) == [("flops", "cpu", 2.0), ("train", "cpu", 9.0), ("train", "cuda", 1.0)]


def test_plan_progress_marks_finished_running_failed_and_lost_jobs(tmp_path, capsys):
    """`fmdenoise plan --progress` reads the jobs' request records, benchmark files and logs:
    one finished train job (its seconds are the pace of the rest), one running, one that
    logged its failure, one started longer ago than its runtime request with no end (lost)."""
    import os

    from fmdenoise.logs import log_to
    from fmdenoise.plan.progress import follow, format_progress

    cfg = small_config()
    res = tmp_path / cfg["results"]
    plan = make_plan(typed(cfg), workdir=tmp_path)
    n = plan["rules"]["train"]["jobs"]
    req = {"mem_mb": 1000, "runtime": 60, "gpu": 1}

    def start(name, rule="train"):
        job = fake_job(str(res / "logs" / rule / f"{name}.log"), rule, 2, req, [str(res / name)])
        Path(job.log[0]).parent.mkdir(parents=True, exist_ok=True)
        return job

    for name in ("done", "running", "failed", "lost"):
        job = start(name)
        if name == "failed":
            with contextlib.suppress(ConfigError), log_to(job.log[0], job):
                raise ConfigError("boom")
        else:
            with log_to(job.log[0], job):
                pass
    (res / "benchmarks" / "train" / "done.tsv").write_text("s\tmax_rss\n7200\t300\n")
    old = (res / "benchmarks" / "train" / "lost.request.json").stat().st_mtime - 2 * 3600
    os.utime(res / "benchmarks" / "train" / "lost.request.json", (old, old))
    followed = follow(plan, res)
    train = followed["rules"]["train"]
    assert (train["finished"], train["running"], train["failed"], train["lost"]) == (1, 1, 1, 1)
    assert train["gpu_hours_spent"] == pytest.approx(2.0)  # 7,200 s on 1 GPU
    assert train["gpu_hours_left"] == pytest.approx(2.0 * (n - 1)) and train["pace"] == "measured"
    predict = followed["rules"]["predict"]
    assert predict["finished"] == 0 and predict["pace"] == "planned"
    assert predict["gpu_hours_left"] == pytest.approx(plan["rules"]["predict"]["gpu_hours"])
    assert followed["total"]["finished"] == 1
    text = format_progress(followed)
    assert "1 of" in text and "1 failed, 1 lost" in text
    # through the command line
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["plan", str(tmp_path / "c.yaml"), "--workdir", str(tmp_path), "--progress",
                 "--no-sinfo", "--offline", "--json"]) == 0  # fmt: skip
    assert json.loads(capsys.readouterr().out)["rules"]["train"]["failed"] == 1
