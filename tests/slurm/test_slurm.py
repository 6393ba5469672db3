"""The demo study through a real SLURM controller and node (``profiles/slurm``) and its
efficiency report, a training job longer than its partition's time limit run as a chain
(the path a preempted job takes too), and a job that fails for good."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from fmdenoise.config import load_config
from fmdenoise.costs.calibration import shipped_table
from fmdenoise.plan.usage import write_efficiency
from fmdenoise.settings import StudySettings

from ..conftest import LONG
from ..helpers import (
    ROOT,
    digests,
    gpu_config,
    prepare,
    reduced_demo_config,
    slurm_command,
    snakemake,
    snakemake_cmd,
    without_seeds,
)

#: the library takes the typed view of a validated config
typed = StudySettings.from_config

pytestmark = [pytest.mark.slow, pytest.mark.slurm]

CELL = "results/demo/runs/drunet/actin-demo/{loss}/lr0.001/pretrained/none/seed0"


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
    # (training is bitwise reproducible; BM3D not quite: see docs/, hence rtol for main)
    for table in ("main", "hyperparameters", "scratch", "augmentation"):
        a = pd.read_csv(local / "results" / "demo" / "tables" / f"{table}.csv")
        a = without_seeds(a) if table == "main" else a  # the local run has a second seed
        b = pd.read_csv(work / "results" / "demo" / "tables" / f"{table}.csv")
        exact = table != "main"
        pd.testing.assert_frame_equal(a, b, check_exact=exact, rtol=1e-5, obj=table)
    cost = pd.read_csv(work / "results" / "demo" / "tables" / "cost.csv")
    assert set(cost["train_device"].dropna()) == {"cpu"}  # the fake GPU is not a CUDA device
    # the efficiency report of the cluster run: every job, measured against its request
    out = write_efficiency(work, typed(load_config(config)), shipped_table())
    eff = pd.read_csv(out / "efficiency.csv")
    train = eff[eff["rule"] == "train"]
    assert len(train) == 6 and (train["req_gpu"] == 1).all() and (train["req_mem_mb"] == 2000).all()
    assert (train["seconds"] > 0).all() and (train["seconds"] < 60 * train["req_runtime_min"]).all()
    assert (eff["rule"] == "predict").sum() == 7 and (eff["rule"] == "metrics").sum() == 7
    calibration = pd.read_csv(out / "calibration.csv")
    assert calibration["source"].astype(str).str.startswith("efficiency").any()
    assert "predict" in (out / "efficiency_summary.md").read_text()


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


def test_failed_job_log_says_why_through_slurm(reduced_demo, slurm_env, tmp_path):
    """A job that fails for good on the cluster (a corrupt pretrained checkpoint, no retries):
    its own log in results/, not only SLURM's output file, ends with the error, its traceback
    and its message. (A retried job's log is the last attempt's: Snakemake clears it before
    each attempt.)"""
    work = tmp_path / "slurm"
    prepare(reduced_demo[0], work)
    ckpt = work / "results" / "demo" / "pretrained" / "drunet.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    config = gpu_config(tmp_path / "slurm.yaml")
    cfg = yaml.safe_load(config.read_text())
    cfg["resources"]["train"]["retries"] = 0
    config.write_text(yaml.safe_dump(cfg, sort_keys=False))
    target = f"{CELL.format(loss='mae')}/model.pt"
    proc = subprocess.run(
        slurm_command(work, config, target), env=slurm_env, capture_output=True, text=True,
        timeout=900,
    )  # fmt: skip
    assert proc.returncode != 0, (proc.stdout + proc.stderr)[-3000:]
    log = train_log(work, "mae")

    def job_wrote_its_end() -> bool:  # on a loaded machine snakemake can report the failure
        return log.is_file() and "job failed" in log.read_text()  # before the job has ended

    wait_for(job_wrote_its_end, 300, f"the failed job's log {log}")
    lines = [x for x in log.read_text().splitlines() if x]
    text = "\n".join(lines)
    assert "ERROR fmdenoise: job failed: CheckpointError:" in text, text[-3000:]
    assert "Traceback (most recent call last)" in text
    assert lines[-1].startswith("fmdenoise.errors.CheckpointError") and "drunet.pt" in lines[-1]


#: a cell that trains for more than two minutes on the test node's one CPU per job, however
#: fast the machine: longer than the whole window in which SLURM may send its SIGTERM
#: 8000 steps: at 4000 a run with torch's CPU buffers on huge pages (9245b02) finished its
#: last step before SLURM's signal came (resumed_from == steps_done == 4000 in CI)
CHAINED = {"steps": 8000, "val_every": 1000, "checkpoint_every": 20}


def test_training_longer_than_the_time_limit_runs_as_a_chain(reduced_demo, slurm_env, tmp_path):
    """On the test cluster's `short` partition (MaxTime 3 min) with time_limit 3 and
    signal_lead 60 s, a training job that needs longer is submitted with a 3-minute limit and
    --signal=TERM@60. SLURM sends that signal up to 60 s earlier than asked (the resolution of
    its event handling, sbatch(1)): here between 60 and 120 s after the start, when training is
    under way on any machine (a 2-minute limit put the window at 0-60 s: seen once before the
    handler was installed, once after a fast run's last step). The training process saves
    last.pt and stops; the job is started again (retries derived from the budget:
    2 + ceil(9 / 2) - 1) and continues from last.pt, ending with the uninterrupted run's weights
    (computed beside it, locally). (This also is what a preempted job goes through.)"""
    local = reduced_demo[0]
    target = f"{CELL.format(loss='mae')}/model.pt"
    ref, work = tmp_path / "ref", tmp_path / "slurm"
    prepare(local, ref)
    prepare(local, work)
    ref_config = reduced_demo_config(tmp_path / "ref.yaml", **CHAINED)
    reference = subprocess.Popen(
        snakemake_cmd(ref, ref_config, "--cores", "1", target, cores=False),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    config = gpu_config(tmp_path / "slurm.yaml", **CHAINED)
    cfg = yaml.safe_load(config.read_text())
    cfg["resources"]["train"].update(
        slurm_partition="short", runtime=9, time_limit=3, signal_lead=60
    )
    config.write_text(yaml.safe_dump(cfg, sort_keys=False))
    start = time.monotonic()
    try:
        proc = subprocess.run(
            slurm_command(work, config, target),
            env=slurm_env,
            capture_output=True,
            text=True,
            timeout=1500,
        )
        ref_out, _ = reference.communicate(timeout=1500)
    finally:
        if reference.poll() is None:
            reference.kill()
    assert reference.returncode == 0, ref_out[-4000:]
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    jobs = train_jobs(work)
    logs = "\n".join(p.read_text() for p in jobs.values())
    attempts = len(set(re.findall(r"--attempt (\d+)", logs)))
    print(f"chained run: {len(jobs)} SLURM job(s), {attempts} attempts, "
          f"{time.monotonic() - start:.0f} s")  # fmt: skip
    info = scontrol(slurm_env, max(jobs))
    if not info:  # the controller forgets a job MinJobAge (300 s) after it ends: ask accounting
        info = subprocess.run(
            ["sacct", "-n", "-P", "-X", "-j", str(max(jobs)), "-o", "Partition,Timelimit"],
            env=slurm_env, capture_output=True, text=True,
        ).stdout  # fmt: skip
        info = "Partition={} TimeLimit={}".format(*info.strip().split("|"))
    assert "Partition=short" in info and "TimeLimit=00:03:00" in info, info
    # the signal arrived mid-training: last.pt saved, the next attempt continued from it
    assert re.search(r"PreemptedError: signal 15 at step \d+: saved", logs), logs[-3000:]
    assert 2 <= attempts <= 7  # retries 6: attempts 1..7
    run = yaml.safe_load((work / CELL.format(loss="mae") / "run.json").read_text())
    assert run["steps_done"] == CHAINED["steps"] and 0 < run["resumed_from"] < CHAINED["steps"]
    a, b = weights(ref / target), weights(work / target)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_plan_reads_the_site_limits(slurm_env):
    """`fmdenoise plan` on a login node: partitions and node shapes from sinfo, queue limits
    from scontrol (the test cluster has MaxArraySize 5) and sacctmgr (the cluster keeps
    accounting and caps root's association at MaxSubmitJobs 4: one job more is refused)."""
    proc = subprocess.run(
        [sys.executable, "-m", "fmdenoise.cli", "plan", str(ROOT / "demo" / "config.yaml"),
         "--json", "--workdir", str(ROOT)],
        env=slurm_env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    site = json.loads(proc.stdout)["site"]
    assert site["partitions"]["short"] == 3 and site["partitions"]["debug"] is None
    assert site["queue_limits"]["MaxArraySize"] == {"value": 5, "from": "scontrol show config"}
    assert site["queue_limits"]["MaxSubmitJobs"] == {"value": 4, "from": "sacctmgr"}
    assert site["jobs"] == 4  # what every SLURM test here submits with (--jobs 4)
    # the limit is enforced: four held jobs are queued, a fifth is refused
    held = []
    try:
        for _ in range(4):
            out = subprocess.run(
                ["sbatch", "--parsable", "--hold", "-o", "/dev/null", "--wrap", "true"],
                env=slurm_env, capture_output=True, text=True, check=True,
            ).stdout  # fmt: skip
            held.append(out.strip().split(";")[0])
        fifth = subprocess.run(
            ["sbatch", "--hold", "-o", "/dev/null", "--wrap", "true"],
            env=slurm_env,
            capture_output=True,
            text=True,
        )
        refused = "MaxSubmit" in fifth.stderr or "job submit limit" in fifth.stderr
        assert fifth.returncode != 0 and refused, fifth.stderr
    finally:
        if held:
            subprocess.run(["scancel", *held], env=slurm_env, check=False)
    # accounting records a finished job (sacct: the executor's default status command)
    done = subprocess.run(
        ["sbatch", "--parsable", "--wait", "-o", "/dev/null", "--wrap", "true"],
        env=slurm_env, capture_output=True, text=True, check=True, timeout=120,
    ).stdout.strip().split(";")[0]  # fmt: skip
    wait_for(
        lambda: "COMPLETED" in subprocess.run(
            ["sacct", "-n", "-X", "-P", "-o", "State", "-j", done],
            env=slurm_env, capture_output=True, text=True,
        ).stdout,
        30, f"sacct to record job {done}",
    )  # fmt: skip
    assert site["nodes"]["debug"] == [{"cpus": 2, "mem_mb": site["nodes"]["debug"][0]["mem_mb"],
                                       "gpus": 1}]  # fmt: skip
    assert site["notes"] == []  # the demo's requests fit the 2-CPU node
    # the real study's training (train and its search's rung jobs, 8 CPUs), predict and
    # transfer_predict (8 CPUs) jobs would pend for ever here; transfer scores on 1 CPU
    proc = subprocess.run(
        [sys.executable, "-m", "fmdenoise.cli", "plan", str(ROOT / "config.yaml"), "--json",
         "--workdir", str(ROOT), "--offline"],
        env=slurm_env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    notes = json.loads(proc.stdout)["site"]["notes"]
    rules = sorted(n.split(":")[0] for n in notes)
    assert rules == ["predict", "rung", "train", "transfer_predict"], notes
    assert all("asks for 8 CPUs" in n and "largest: 2 CPUs" in n for n in notes), notes


def test_slurm_conf_off_the_default_path(reduced_demo, slurm_env, tmp_path):
    """A site whose slurm.conf is only in SLURM_CONF (nothing at /etc/slurm/slurm.conf): the
    executor's job step removes SLURM_CONF before it calls srun inside the job, which then
    cannot find its configuration (plugin issue #164), so the job fails. With the documented
    workaround (profiles/slurm/bin first on PATH, FMDENOISE_SLURM_CONF set) it runs."""
    default = Path("/etc/slurm/slurm.conf")
    if not default.is_symlink():
        pytest.skip("/etc/slurm/slurm.conf is not the test cluster's link (a real cluster?)")
    link = os.readlink(default)
    work = tmp_path / "w"
    prepare(reduced_demo[0], work)
    config = reduced_demo_config(tmp_path / "reduced.yaml")
    target = "results/demo/patches/actin-demo/patches.json"
    shutil.rmtree(work / "results/demo/patches/actin-demo")  # one cheap job to run
    default.unlink()
    try:
        bare = subprocess.run(
            slurm_command(work, config, target), env=slurm_env, capture_output=True, text=True
        )
        logs = "\n".join(p.read_text() for p in (work / ".snakemake/slurm_logs").rglob("*.log"))
        assert bare.returncode != 0
        assert "Could not establish a configuration source" in logs, logs[-3000:]
        env = {
            **slurm_env,
            "FMDENOISE_SLURM_CONF": slurm_env["SLURM_CONF"],
            "PATH": f"{ROOT / 'profiles' / 'slurm' / 'bin'}:{slurm_env['PATH']}",
        }
        fixed = subprocess.run(
            slurm_command(work, config, target), env=env, capture_output=True, text=True
        )
        assert fixed.returncode == 0, (fixed.stdout + fixed.stderr)[-4000:]
    finally:
        os.symlink(link, default)
    assert json.loads((work / target).read_text())["splits"]["train"]["count"] == 384
