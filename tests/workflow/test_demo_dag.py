"""Real ``snakemake`` runs of the demo study (and a dry run of the real study's DAG)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml

from fmdenoise.models.checkpoints import load_model
from fmdenoise.models.wrapper import Denoiser
from fmdenoise.settings import NormalizationSettings, PretrainSettings, StudySettings
from fmdenoise.train.pretrain import held_out_gain, pretrain

from ..helpers import DEMO, ROOT, job_counts, ran, snakemake

#: the library takes the typed view of a validated config
typed = StudySettings.from_config

DATASETS = ("actin-demo", "mito-demo", "nucleus-demo")


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("demo")
    targets = [f"results/demo/patches/{d}/patches.json" for d in DATASETS]
    proc = snakemake(work, *targets)
    assert job_counts(proc.stdout + proc.stderr) == {
        "synthetic_source": 1,
        "download": 1,
        "extract": 1,
        "ingest": 3,
        "patches": 3,
    }
    return work


@pytest.mark.slow
@pytest.mark.workflow
def test_demo_up_to_patches(demo_run):
    res = demo_run / "results" / "demo"
    sha = (res / "downloads" / "hagen-demo.sha256").read_text().split()[0]
    assert re.fullmatch(r"[0-9a-f]{64}", sha)
    for d in DATASETS:
        manifest = (res / "data" / d / "manifest.csv").read_text()
        assert manifest.count(",val,low,") == 2 and manifest.count(",test,provided/gaussian,") == 8
        low = np.load(res / "patches" / d / "train_low.npy", mmap_mode="r")
        assert low.shape == (8 * 48, 1, 32, 32) and low.dtype == np.float32
        for rule in ("ingest", "patches"):
            assert (res / "logs" / rule / f"{d}.log").exists()
            assert (res / "benchmarks" / rule / f"{d}.tsv").exists()
    assert not list(res.rglob("*.tmp-*")), "temporary files left behind"


@pytest.mark.slow
@pytest.mark.workflow
def test_rerun_does_nothing_and_patch_change_reruns_only_patches(demo_run, tmp_path):
    targets = [f"results/demo/patches/{d}/patches.json" for d in DATASETS]
    again = snakemake(demo_run, *targets)
    assert "Nothing to be done" in again.stdout + again.stderr
    cfg = yaml.safe_load(DEMO.read_text())
    cfg["patches"]["per_image"] = 16
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(cfg))
    dry = snakemake(demo_run, "-n", *targets, config=changed)
    assert job_counts(dry.stdout + dry.stderr) == {"patches": 3}


@pytest.mark.slow
@pytest.mark.workflow
def test_parallel_bm3d_in_a_snakemake_job_equals_serial(demo_run, tmp_path):
    """The real study's BM3D jobs (predict: cpus 8, many test images) through the rule's own
    script: with 2 threads and 8 test images the job runs a process pool whose children must
    not re-run the script (they did: NameError 'snakemake', BrokenProcessPool, empty log). Its
    images equal the serial run's (to float32 rounding: one thread per worker)."""
    from fmdenoise.evaluate.predict import predict_dataset
    from fmdenoise.io import read_image

    for method in ("bm3d", "bm3d-vst"):
        target = f"results/demo/predictions/{method}/nucleus-demo"
        snakemake(demo_run, target, "--set-threads", "predict=2")
        timing = json.loads((demo_run / target / "timing.json").read_text())
        assert timing["workers"] == 2 and timing["images"] == 8
        data = demo_run / "results" / "demo" / "data" / "nucleus-demo"
        norm = NormalizationSettings.from_dict(yaml.safe_load(DEMO.read_text())["normalization"])
        predict_dataset({"kind": method}, data, tmp_path / method, norm)
        names = sorted(p.name for p in (tmp_path / method).glob("*.tif"))
        assert len(names) == 8
        for name in names:
            np.testing.assert_allclose(
                read_image(demo_run / target / name),
                read_image(tmp_path / method / name),
                rtol=1e-5,
            )


@pytest.mark.slow
@pytest.mark.workflow
def test_shipped_checkpoint_regenerated_by_the_pretrain_rule(tmp_path):
    """`make demo-checkpoints` at a reduced budget: the pretrain rule, through the
    demo/pretrain.yaml overlay, makes DRUNet with the shipped file's architecture, keys and
    provenance, a real Gaussian denoiser, and bit-identical to the recipe run here."""
    small = tmp_path / "small.yaml"
    small.write_text(yaml.safe_dump({"pretrain": {"steps": 120}}))
    target = "results/demo-pretrain/pretrained/drunet.pt"
    configs = [str(DEMO), str(ROOT / "demo" / "pretrain.yaml"), str(small)]
    proc = snakemake(tmp_path, target, "--configfile", *configs)
    assert job_counts(proc.stdout + proc.stderr) == {"pretrain": 1}
    net, meta = load_model(tmp_path / target, "drunet")
    shipped = torch.load(ROOT / "demo" / "pretrained" / "drunet.pt", weights_only=True)
    assert meta["kwargs"] == shipped["kwargs"]
    assert {k: v.shape for k, v in net.state_dict().items()} == {
        k: v.shape for k, v in shipped["state_dict"].items()
    }
    recipe = {**shipped["provenance"]["recipe"], "steps": 120}
    assert meta["provenance"]["recipe"] == recipe
    assert set(meta["provenance"]) == set(shipped["provenance"])
    gain = held_out_gain(Denoiser(net, meta["arch"], meta["kwargs"]))
    assert gain["gain_db"] > 3.0, gain
    threads = torch.get_num_threads()
    torch.set_num_threads(meta["provenance"]["threads"])
    try:
        again, _ = pretrain("drunet", meta["kwargs"], PretrainSettings.from_dict(recipe))
    finally:
        torch.set_num_threads(threads)
    for key, value in again.state_dict().items():
        assert torch.equal(value, net.state_dict()[key]), key


def test_real_study_dag_builds_offline(tmp_path):
    proc = snakemake(tmp_path, "-n", config=ROOT / "config.yaml")
    counts = job_counts(proc.stdout + proc.stderr)
    assert counts["download"] == 3  # the official checkpoints
    # the published data: each dataset fetches its files from the GigaDB folder, no archive
    assert counts["fetch_folder"] == 10 and "extract" not in counts
    assert counts["ingest"] == 10 and counts["patches"] == 10
    assert counts["convert_checkpoint"] == 3


def test_bad_config_stops_before_any_job(tmp_path):
    cfg = yaml.safe_load(DEMO.read_text())
    cfg["training"]["steps"] = 0
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    proc = snakemake(tmp_path, "-n", config=bad, check=False)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "['training']['steps']" in out and "less than the minimum of 1" in out
    assert not (tmp_path / "results").exists()


PUBLISHED = {
    "drunet": ("kair", lambda sd: sd),
    "restormer": ("restormer", lambda sd: {"params": sd}),
    "kbnet": ("kbnet", lambda sd: {"net": {f"module.{k}": v for k, v in sd.items()}}),
}


@pytest.mark.workflow
def test_official_checkpoints_downloaded_and_converted(http_server, tmp_path):
    """The real-study path: checkpoint download (HTTP, sha256) -> strict load -> pretrained/."""
    import hashlib
    import io

    from fmdenoise.models import build

    cfg = yaml.safe_load(DEMO.read_text())
    originals = {}
    for name, (fmt, wrap) in PUBLISHED.items():
        kwargs = cfg["models"][name]["kwargs"]
        net = build(cfg["models"][name]["arch"], **kwargs)
        originals[name] = net.state_dict()
        buf = io.BytesIO()
        torch.save(wrap(net.state_dict()), buf)
        data = buf.getvalue()
        http_server.routes[f"/{name}.pth"] = (data, "ok")
        cfg["downloads"][f"{name}.pth"] = {
            "url": f"{http_server.url}/{name}.pth",
            "sha256": hashlib.sha256(data).hexdigest(),
            "kind": "checkpoint",
        }
        cfg["models"][name]["pretrained"] = {
            "source": "download",
            "download": f"{name}.pth",
            "format": fmt,
        }
    config = tmp_path / "ckpt.yaml"
    config.write_text(yaml.safe_dump(cfg))
    snakemake(tmp_path, *[f"results/demo/pretrained/{m}.pt" for m in PUBLISHED], config=config)
    for name in PUBLISHED:
        net, meta = load_model(tmp_path / "results" / "demo" / "pretrained" / f"{name}.pt")
        assert meta["source_format"] == PUBLISHED[name][0]
        assert all(torch.equal(net.state_dict()[k], v) for k, v in originals[name].items())


@pytest.mark.slow
@pytest.mark.workflow
def test_demo_trains_every_cell_then_rerun_does_nothing(reduced_demo):
    """The train stage of the demo on one dataset: main sweep, selection, studies, and the
    selected cells trained again with a second seed (grid.final_seeds 2)."""
    import json

    import pandas as pd

    demo_run, config, output = reduced_demo
    counts = job_counts(output)
    assert counts["train"] == 4 and counts["select"] == 2  # known before selection ran
    res = demo_run / "results" / "demo"
    # 2 models x 2 losses (main sweep) + the fine-tuned model's scratch and rot studies + the
    # selected cell of each model with seed 1
    assert len(list((res / "runs").rglob("run.json"))) == 4 + 2 + 2
    assert len(list((res / "studies").glob("*/actin-demo.json"))) == 1
    for model in ("drunet",):
        chosen = json.loads((res / "selected" / model / "actin-demo.json").read_text())["selected"]
        base = res / "runs" / model / "actin-demo" / chosen["loss"] / f"lr{chosen['lr']:g}"
        curves = {
            init: pd.read_csv(base / init / "none" / "seed0" / "curve.csv")
            for init in ("pretrained", "scratch")
        }
        assert list(curves["pretrained"].step) == [0, 10, 20]
        # the effect the study measures: pretrained starts from a lower validation loss
        assert curves["pretrained"].val_loss.iloc[0] < curves["scratch"].val_loss.iloc[0], model
        # the extra seed trains after selection and selection never saw it: its candidates
        # are the main sweep's cells, all at seed 0
        selected = json.loads((res / "selected" / model / "actin-demo.json").read_text())
        assert [c["seed"] for c in selected["candidates"]] == [0, 0] and chosen["seed"] == 0
        extra = json.loads((base / "pretrained" / "none" / "seed1" / "run.json").read_text())
        assert extra["cell"]["seed"] == 1 and extra["steps_done"] == 20
        assert extra["cell"]["loss"] == chosen["loss"]
        # every run records the noise range of its training images (fmdenoise denoise checks it)
        patches = json.loads((res / "patches" / "actin-demo" / "patches.json").read_text())
        assert extra["training_noise"] == patches["noise"] and patches["noise"]["images"] == 8
        run = json.loads((base / "pretrained" / "rot" / "seed0" / "run.json").read_text())
        assert run["steps_done"] == 20 and run["parameters"] > 0 and run["device_type"] == "cpu"
        assert (res / "logs" / "train" / model / "actin-demo" / chosen["loss"]).is_dir()
    again = snakemake(demo_run, config=config)
    assert "Nothing to be done" in again.stdout + again.stderr

    assert "| True " in (res / "tables" / "hyperparameters.md").read_text()
    for name in ("scratch", "augmentation", "cost"):
        for ext in ("csv", "md", "tex"):
            assert (res / "tables" / f"{name}.{ext}").stat().st_size > 0
    cost = pd.read_csv(res / "tables" / "cost.csv").set_index(["method", "dataset"])
    assert cost.loc[("drunet", "actin-demo"), "sweep_cells"] == 2
    assert cost.loc[("drunet", "actin-demo"), "train_device"] == "cpu"
    # raw, provided-gaussian, bm3d, bm3d-vst, drunet-zeroshot, drunet, care
    assert (cost["inference_s_per_mpx"] >= 0).all() and len(cost) == 7
    for fig in ("learning_curves", "psnr_vs_cost", "examples/actin-demo"):
        assert (res / "figures" / f"{fig}.png").read_bytes()[:4] == b"\x89PNG", fig
    answers = (res / "answers.md").read_text()
    for question in ("## Q1. Do Gaussian denoisers pretrained", "## Q2. How do the architectures",
                     "## Q3. Which optimisation choices"):  # fmt: skip
        assert question in answers, question
    # the Snakemake report gathers every table and figure with its caption
    snakemake(demo_run, "--report", "report.html", config=config)
    html = (demo_run / "report.html").read_text()
    for item in (
        "main.csv",
        "cost.csv",
        "hyperparameters.csv",
        "learning_curves.png",
        "psnr_vs_cost.png",
        "actin-demo.png",
        "answers.md",
    ):
        assert item in html, item
    # the main table is its own target: deleting it reruns only the table job
    table = res / "tables" / "main.md"
    text = table.read_text()
    methods = ("raw", "provided-gaussian", "bm3d", "bm3d-vst", "drunet-zeroshot", "drunet", "care")
    for method in methods:
        assert f"| actin-demo | {method} " in text, method
    assert "PSNR over seeds (mean ± sd, n)" in text and "MicroSSIM [95% CI]" in text
    main = pd.read_csv(res / "tables" / "main.csv").set_index("method")
    assert main.loc["drunet", "seeds"] == 2 and main.loc["care", "seeds"] == 2
    seed1 = pd.read_csv(res / "metrics" / "drunet-seed1" / "actin-demo.csv")["psnr"].mean()
    seed0 = main.loc["drunet", "psnr"]
    assert main.loc["drunet", "psnr_seed_mean"] == pytest.approx((seed0 + seed1) / 2)
    assert main.loc["drunet", "psnr_seed_sd"] == pytest.approx(abs(seed0 - seed1) / 2**0.5)
    assert pd.isna(main.loc["raw", "psnr_seed_mean"]) and main["microssim"].notna().all()
    table.unlink()
    dry = snakemake(demo_run, "-n", "results/demo/tables/main.md", config=config)
    assert job_counts(dry.stdout + dry.stderr) == {"table_main": 1}


@pytest.mark.slow
@pytest.mark.workflow
def test_plan_counts_every_job_that_ran(reduced_demo):
    """The plan's jobs per rule equal the jobs the reduced demo actually ran, those that only
    exist after the select checkpoint included (the extra seed's train, predict and metrics
    jobs, the studies), which `snakemake -n` cannot list."""
    from fmdenoise.config import load_config
    from fmdenoise.plan.efficiency import read_requests
    from fmdenoise.plan.report import make_plan, request_counts

    work, config, output = reduced_demo
    plan = make_plan(typed(load_config(config)), workdir=work)
    planned = {rule: s["jobs"] for rule, s in plan["rules"].items()}
    assert ran(output) == planned
    # and every job asked for what the plan says (the request record each job wrote), those
    # after the checkpoints included
    recorded: dict[str, list] = {}
    for job in read_requests(work / "results" / "demo"):
        recorded.setdefault(job["rule"], []).append(
            SimpleNamespace(
                request={"cpus": job["threads"], "mem_mb": job["req_mem_mb"],
                         "runtime": job["req_runtime_min"], "gpu": job["req_gpu"]}
            )
        )  # fmt: skip
    seen = {rule: request_counts(jobs) for rule, jobs in recorded.items()}
    assert seen == {rule: s["requests"] for rule, s in plan["rules"].items()}
    # the plan followed: every job finished, nothing left
    from fmdenoise.plan.progress import follow

    followed = follow(plan, work / "results" / "demo")
    assert followed["total"]["finished"] == followed["total"]["planned"] == sum(planned.values())
    assert followed["total"]["left"] == 0 and not followed["unplanned_rules"]


@pytest.mark.slow
@pytest.mark.workflow
def test_plan_disk_and_files_match_a_finished_run(reduced_demo):
    """What `fmdenoise plan` says the study leaves on disk and how many files (inodes), checked
    against the reduced demo run to the end (within 10 %); a finished run keeps no optimizer
    state (last.pt)."""
    from fmdenoise.config import load_config
    from fmdenoise.plan.report import make_plan

    work, config, _ = reduced_demo
    res = work / "results" / "demo"
    assert not list((res / "runs").rglob("last.pt"))
    plan = make_plan(typed(load_config(config)), workdir=work)
    seen, used = set(), 0
    for path in res.rglob("*"):
        st = path.lstat()
        if path.is_file() and st.st_ino not in seen:  # a hard link counts once, as for du
            seen.add(st.st_ino)
            used += st.st_size
    metadata = sum(1 for p in (work / ".snakemake" / "metadata").iterdir())
    assert used == pytest.approx(plan["disk_gb"] * 1e9, rel=0.1), plan["disk_gb_by_stage"]
    assert len(seen) + metadata == pytest.approx(plan["files"], rel=0.1)
    assert plan["disk_peak_gb"] > plan["disk_gb"]


@pytest.mark.slow
@pytest.mark.workflow
def test_keep_weights_selected_through_the_workflow(reduced_demo, tmp_path):
    """grid.keep_weights: selected (config.yaml's setting) through Snakemake: after selection
    the unselected candidates' model.pt are notes naming the selected run, predictions and
    tables are those of a run that kept every weight, and a rerun has nothing to do."""
    import json

    import pandas as pd

    from fmdenoise.models.checkpoints import DROPPED_FORMAT

    from ..helpers import prepare, without_seeds

    local, config, _ = reduced_demo
    work = tmp_path / "w"
    prepare(local, work)
    cfg = yaml.safe_load(config.read_text())
    cfg["grid"]["keep_weights"] = "selected"
    cfg["grid"]["final_seeds"] = 1  # the extra seed is no candidate: nothing to see here
    selected_only = tmp_path / "selected.yaml"
    selected_only.write_text(yaml.safe_dump(cfg, sort_keys=False))
    snakemake(work, config=selected_only)
    res = work / "results" / "demo"
    for model in ("drunet", "care"):
        sel = json.loads((res / "selected" / model / "actin-demo.json").read_text())
        assert len(sel["candidates"]) == 2
        for cand in sel["candidates"]:
            obj = torch.load(work / cand["run"] / "model.pt", weights_only=True)
            kept = cand["run"] == sel["selected"]["run"]
            assert (obj["format"] != DROPPED_FORMAT) == kept, cand["run"]
            assert (work / cand["run"] / "run.json").is_file()
    for table in ("main", "hyperparameters"):
        ours = pd.read_csv(local / "results" / "demo" / "tables" / f"{table}.csv")
        pd.testing.assert_frame_equal(
            without_seeds(ours) if table == "main" else ours,
            pd.read_csv(res / "tables" / f"{table}.csv"),
            check_exact=False,
            rtol=1e-3,
        )
    again = snakemake(work, config=selected_only)
    assert "Nothing to be done" in again.stdout + again.stderr


@pytest.mark.workflow
def test_real_config_ingests_the_published_layout_from_a_server(tmp_path):
    """`snakemake --config hagen_url=<a server with the published layout>` with config.yaml
    otherwise unchanged: each dataset fetches its own stacks from the listing, the unsplit
    ones are split by split.test_fraction, the one with test files keeps them."""
    import pandas as pd

    from fmdenoise.plan.rehearsal import serve

    from ..gigadb import PUBLISHED, make_published_tree

    tree = make_published_tree(tmp_path / "site" / "100888")
    work = tmp_path / "work"
    work.mkdir()
    targets = [f"results/hagen/data/{name}" for name in PUBLISHED]
    with serve(tree.parent) as url:
        cmd = [
            sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"),
            "--directory", str(work), "--cores", "2",
            *targets, "--config", f"hagen_url={url}/100888/", "hagen_mirrors=[]",
        ]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    counts = job_counts(proc.stdout + proc.stderr)
    assert counts["fetch_folder"] == 3 and counts["ingest"] == 3
    for name, (folder, pages, test_pages) in PUBLISHED.items():
        m = pd.read_csv(work / "results/hagen/data" / name / "manifest.csv")
        n_test = (m[m["role"] == "low"]["split"] == "test").sum()
        assert n_test == (test_pages or round(0.1 * pages))
        log = (work / f"results/hagen/logs/download/hagen/{name}.log").read_text()
        assert f"from {url}/100888/{folder}/{name}-lowsnr.tif" in log
        sums = (work / f"results/hagen/downloads/hagen/{name}.sha256").read_text()
        assert f"  {folder}/{name}-highsnr.tif" in sums
    assert (
        "split.test_fraction" in (work / "results/hagen/logs/ingest/mito-confocal.log").read_text()
    )
    # nothing but the matched files was fetched (the readme and checksum list stay remote)
    cache = work / "results/hagen/downloads/hagen"
    cached = sorted(p.relative_to(cache).as_posix() for p in cache.rglob("*") if p.is_file())
    assert cached == sorted(
        [f"{folder}/{name}-{role}.tif" for name, (folder, *_) in PUBLISHED.items()
         for role in ("lowsnr", "highsnr")]
        + [f"07-nucleus/test/nucleus-{role}.tif" for role in ("lowsnr", "highsnr")]
        + [f"{name}.sha256" for name in PUBLISHED]
    )  # fmt: skip


@pytest.mark.slow
@pytest.mark.workflow
def test_denoise_with_defaults_equals_the_studys_own_prediction(reduced_demo, tmp_path):
    """`fmdenoise denoise` given the study's selection file (or a seed's run folder) applies the
    model as the study's test-set inference did (the demo tiles at 96 px overlapping by 32, not
    denoise's old 512/64): the output equals the study's prediction of the same test image,
    for every trained kind of the demo (fine-tuned, CARE from scratch, an extra seed)."""
    from fmdenoise.deploy.denoise import denoise_files
    from fmdenoise.io import read_image

    work, _, _ = reduced_demo
    res = work / "results" / "demo"
    image = sorted((res / "data" / "actin-demo" / "test" / "low").glob("*.tif"))[0]
    selected = res / "selected" / "drunet" / "actin-demo.json"
    run = json.loads(selected.read_text())["selected"]["run"]
    models = {
        "drunet": selected,
        "care": res / "selected" / "care" / "actin-demo.json",
        "drunet-seed1": work / Path(run).parent / "seed1",
    }
    for method, spec in models.items():
        record = json.loads((spec / "run.json" if spec.is_dir() else spec).read_text())["inference"]
        assert record["tile"] == 96 and record["overlap"] == 32, method
        (out,) = denoise_files(spec, [image], tmp_path / method, progress=False)
        ours = read_image(out)
        study = read_image(res / "predictions" / method / "actin-demo" / image.name)
        np.testing.assert_allclose(ours, study, rtol=0, atol=1e-5 * np.ptp(study), err_msg=method)
