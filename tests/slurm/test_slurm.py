"""The demo study through a real SLURM controller and node (``profiles/slurm``), preemption
of a training job and its resumption, and a job that fails for good."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from ..conftest import LONG, LONG_CELL
from ..helpers import ROOT, digests, prepare, reduced_demo_config, snakemake, snakemake_cmd

pytestmark = [pytest.mark.slow, pytest.mark.slurm]

# What a user adds on this one-node test cluster: it has no accounting database (so no sacct
# and no account to guess), and status checks can be frequent.
LOCAL_CLUSTER = (
    "--slurm-status-command",
    "squeue",
    "--slurm-init-seconds-before-status-checks",
    "1",
    "--seconds-between-status-checks",
    "2",
    "--slurm-no-account",
    "--slurm-keep-successful-logs",
    "--jobs",
    "4",
    "--latency-wait",
    "10",
)
CELL = "results/demo/runs/drunet/actin-demo/{loss}/lr0.001/pretrained/none/seed0"


def slurm_command(work: Path, config: Path, *targets: str) -> list[str]:
    profile = ("--profile", str(ROOT / "profiles" / "slurm"))
    return snakemake_cmd(work, config, *profile, *LOCAL_CLUSTER, *targets, cores=False)


def gpu_config(path: Path, **training: object) -> Path:
    """The reduced demo with the train jobs asking SLURM for one GPU (the node's fake one)."""
    reduced_demo_config(path, **training)
    cfg = yaml.safe_load(path.read_text())
    cfg.setdefault("resources", {})["train"] = {"cpus": 1, "mem_mb": 2000, "runtime": 30, "gpu": 1}
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def scontrol(env: dict[str, str], job: int) -> str:
    return subprocess.run(
        ["scontrol", "show", "job", str(job)], env=env, capture_output=True, text=True
    ).stdout


def train_jobs(work: Path) -> dict[int, Path]:
    """SLURM job id -> its log, for every train job the executor submitted."""
    logs = (work / ".snakemake" / "slurm_logs" / "rule_train").rglob("*.log")
    return {int(p.stem): p for p in logs}


def test_demo_through_slurm_matches_local_run(reduced_demo, slurm_env, tmp_path):
    """Training, selection, studies, evaluation, tables and figures of the reduced demo as
    SLURM jobs, from the local run's data, patches and pretrained weights (their rules are
    the same kind of job and would only add minutes)."""
    local = reduced_demo[0]
    work = tmp_path / "slurm"
    prepare(local, work)
    config = gpu_config(work / "slurm.yaml")
    start = time.monotonic()
    proc = subprocess.run(
        slurm_command(work, config), env=slurm_env, capture_output=True, text=True, timeout=1500
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    print(f"demo through SLURM: {time.monotonic() - start:.0f} s")
    submitted = {int(i) for i in re.findall(r"submitted with SLURM jobid (\d+)", out)}
    jobs = train_jobs(work)
    assert len(jobs) == 6 and set(jobs) <= submitted  # 4 sweep cells + 2 study runs
    for job in sorted(jobs)[-3:]:  # finished jobs stay known to slurmctld for MinJobAge
        info = scontrol(slurm_env, job)
        assert "JobState=COMPLETED" in info and re.search(r"gres[:/]gpu[:=]1", info), info
    # each metric job rides along with the prediction it scores: 7 submissions for 14 jobs
    logs = work / ".snakemake" / "slurm_logs"
    assert sorted(p.name for p in logs.glob("group_*")) == ["group_evaluate_metrics_predict"]
    assert len(list((logs / "group_evaluate_metrics_predict").rglob("*.log"))) == 7
    # (training is bitwise reproducible; BM3D only to float32 rounding, hence rtol for main)
    for table in ("main", "hyperparameters", "scratch", "augmentation"):
        a = pd.read_csv(local / "results" / "demo" / "tables" / f"{table}.csv")
        b = pd.read_csv(work / "results" / "demo" / "tables" / f"{table}.csv")
        exact = table != "main"
        pd.testing.assert_frame_equal(a, b, check_exact=exact, rtol=1e-7, obj=table)
    cost = pd.read_csv(work / "results" / "demo" / "tables" / "cost.csv")
    assert set(cost["train_device"].dropna()) == {"cpu"}  # the fake GPU is not a CUDA device


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def train_log(work: Path, loss: str) -> Path:
    run = CELL.format(loss=loss).removeprefix("results/demo/runs/")
    return work / "results" / "demo" / "logs" / "train" / f"{run}.log"


def wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"snakemake ended while waiting for {what}")
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def sigterm_running_train_job(work: Path, env: dict[str, str], proc: subprocess.Popen) -> int:
    """Wait until a train job runs and has written last.pt, then SIGTERM it through SLURM."""

    def running_with_checkpoint() -> int | None:
        for job in train_jobs(work):
            if "JobState=RUNNING" in scontrol(env, job) and list(
                (work / "results" / "demo" / "runs").rglob("last.pt")
            ):
                return job
        return None

    job = wait_for(running_with_checkpoint, 600, "a running train job with last.pt", proc)
    subprocess.run(["scancel", "--signal=TERM", "--full", str(job)], env=env, check=True)
    return job


def test_preempted_training_job_is_resubmitted_and_resumes(
    reduced_demo, long_cell, slurm_env, tmp_path
):
    local, ref = reduced_demo[0], long_cell[0]  # ref: the same cell trained uninterrupted
    target = f"{CELL.format(loss='mae')}/model.pt"
    assert target.removesuffix("/model.pt") == LONG_CELL
    work = tmp_path / "slurm"
    prepare(local, work)
    config = gpu_config(tmp_path / "slurm.yaml", **LONG)
    proc = subprocess.Popen(
        slurm_command(work, config, target),
        env=slurm_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    killed = sigterm_running_train_job(work, slurm_env, proc)
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, out[-6000:]
    jobs = train_jobs(work)
    assert len(jobs) == 2 and killed in jobs  # the preempted submission and its retry
    run = yaml.safe_load((work / CELL.format(loss="mae") / "run.json").read_text())
    assert run["resumed_from"] and 0 < run["resumed_from"] < 300 and run["steps_done"] == 300
    # (snakemake clears a job's log before each attempt: this is the retry's log)
    assert f"at step {run['resumed_from']}" in train_log(work, "mae").read_text()
    a, b = weights(ref / target), weights(work / target)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_job_failing_for_good_keeps_other_results_and_rerun_resumes(
    reduced_demo, slurm_env, tmp_path
):
    local = reduced_demo[0]
    work = tmp_path / "slurm"
    prepare(local, work)
    before = digests(work / "results" / "demo")
    config = gpu_config(tmp_path / "slurm.yaml", **LONG)
    cfg = yaml.safe_load(config.read_text())
    cfg["resources"]["train"]["retries"] = 0
    config.write_text(yaml.safe_dump(cfg, sort_keys=False))
    targets = [f"{CELL.format(loss=loss)}/model.pt" for loss in ("mae", "ssim")]
    proc = subprocess.Popen(
        slurm_command(work, config, *targets),
        env=slurm_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    sigterm_running_train_job(work, slurm_env, proc)
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode != 0, out[-3000:]
    done = [t for t in targets if (work / t).exists()]
    failed = [t for t in targets if not (work / t).exists()]
    assert len(done) == 1 and len(failed) == 1, out[-3000:]  # keep-going finished the other
    failed_dir = work / Path(failed[0]).parent
    assert (failed_dir / "last.pt").is_file() and not (failed_dir / "run.json").exists()
    after = digests(work / "results" / "demo")
    assert {k: v for k, v in after.items() if k in before} == before  # inputs untouched
    # the rerun (here on the local executor) continues the failed cell from its last.pt
    snakemake(work, *targets, config=config)
    loss = "mae" if "/mae/" in failed[0] else "ssim"
    assert "resuming from" in train_log(work, loss).read_text()
    run = yaml.safe_load((failed_dir / "run.json").read_text())
    assert run["resumed_from"] and run["steps_done"] == 300
