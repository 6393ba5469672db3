"""SIGKILL in the middle of a training, prediction and table job, and two snakemake runs on
one folder. After a kill, ``snakemake --unlock`` and a rerun give the results of an
uninterrupted run; no file that looks finished is ever corrupt."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
import torch
import yaml

from ..conftest import LONG, LONG_CELL
from ..helpers import gpu_config, prepare, slurm_command, snakemake, snakemake_cmd

pytestmark = [pytest.mark.slow, pytest.mark.workflow]

CELL = LONG_CELL
#: what a rerun job writes anew besides its outputs: its log and benchmark record
RERUN_RECORDS = ("demo/logs/*", "demo/benchmarks/*")


def start(work: Path, config: Path, *targets: str) -> subprocess.Popen:
    return subprocess.Popen(
        snakemake_cmd(work, config, *targets),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def kill_when(proc: subprocess.Popen, ready: Callable[[], bool], what: str) -> None:
    """SIGKILL snakemake and its jobs (the whole process group) once ``ready()``."""
    end = time.monotonic() + 600
    while not ready():
        if proc.poll() is not None:
            raise AssertionError(f"finished before {what}:\n{proc.stdout.read()[-3000:]}")
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)


def running(script: str, work: Path) -> bool:
    """A job process of ``script`` (snakemake's copy ``.snakemake/scripts/tmp*.<script>``)
    started by the snakemake run in ``work``: its working directory is ``work``. Other tests
    run jobs of the same scripts at the same time (the SLURM tests beside these), and a
    match on the name alone once let the second run below start before the first had taken
    the lock."""
    here = os.path.realpath(work)
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
            cwd = os.readlink(proc / "cwd")
        except OSError:  # the process ended meanwhile, or is not ours to read
            continue
        if cwd == here and any(
            a.endswith(f".{script}".encode()) and b".snakemake/scripts" in a for a in args
        ):
            return True
    return False


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def test_sigkill_during_training(reduced_demo, long_cell, tmp_path, guard):
    ref, config = long_cell
    work = tmp_path / "w"
    prepare(reduced_demo[0], work)
    guard.watch(work / "results")
    proc = start(work, config, f"{CELL}/model.pt")
    run = work / CELL
    kill_when(proc, lambda: (run / "last.pt").exists() and running("train.py", work), "last.pt")
    assert not (run / "model.pt").exists()  # killed mid-job
    snakemake(work, "--unlock", config=config)
    out = snakemake(work, f"{CELL}/model.pt", config=config)
    assert (
        "resuming from"
        in (work / "results/demo/logs/train" / CELL.split("runs/")[1])
        .with_suffix(".log")
        .read_text()
    ), out.stdout[-2000:]
    a, b = weights(ref / CELL / "model.pt"), weights(run / "model.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)  # same weights as never interrupted
    guard.check(rewritten=[])


def full_copy(local: Path, work: Path) -> None:
    shutil.copytree(local / "results", work / "results")


def test_sigkill_during_prediction(reduced_demo, tmp_path, guard):
    local, config, _ = reduced_demo
    work = tmp_path / "w"
    full_copy(local, work)
    pred = work / "results/demo/predictions/bm3d/actin-demo"
    shutil.rmtree(pred)
    for derived in ("metrics/bm3d/actin-demo.csv", "tables/main.csv", "tables/main.md"):
        (work / "results/demo" / derived).unlink(missing_ok=True)
    guard.watch(work / "results")
    proc = start(work, config, "results/demo/tables/main.csv")

    def partly_written() -> bool:
        tmp = list(pred.parent.glob(".actin-demo.tmp-*/*.tif"))
        return bool(tmp) and running("predict.py", work)

    kill_when(proc, partly_written, "a half-written prediction folder")
    assert not pred.exists() and list(pred.parent.glob(".actin-demo.tmp-*"))
    snakemake(work, "--unlock", config=config)
    snakemake(work, "results/demo/tables/main.csv", config=config)
    ref = local / "results/demo/predictions/bm3d/actin-demo"
    for tif in sorted(ref.glob("*.tif")):  # BM3D is reproducible only nearly (docs/)
        np.testing.assert_allclose(
            tifffile.imread(pred / tif.name), tifffile.imread(tif), rtol=1e-3
        )
    pd.testing.assert_frame_equal(
        pd.read_csv(local / "results/demo/tables/main.csv"),
        pd.read_csv(work / "results/demo/tables/main.csv"),
    )
    guard.check(rewritten=RERUN_RECORDS)


def test_sigkill_during_table_job(reduced_demo, tmp_path, guard):
    local, config, _ = reduced_demo
    work = tmp_path / "w"
    full_copy(local, work)
    for ext in ("csv", "md", "tex"):
        (work / f"results/demo/tables/main.{ext}").unlink(missing_ok=True)
    guard.watch(work / "results")
    proc = start(work, config, "results/demo/tables/main.md")
    kill_when(proc, lambda: running("table_main.py", work), "the table job")
    assert not (work / "results/demo/tables/main.md").exists()
    snakemake(work, "--unlock", config=config)
    again = snakemake(work, "results/demo/tables/main.md", config=config)
    assert "table_main" in again.stdout + again.stderr
    pd.testing.assert_frame_equal(
        pd.read_csv(local / "results/demo/tables/main.csv"),
        pd.read_csv(work / "results/demo/tables/main.csv"),
    )
    guard.check(rewritten=RERUN_RECORDS)


def test_second_snakemake_on_the_same_folder_is_refused(reduced_demo, long_cell, tmp_path, guard):
    _, config = long_cell
    work = tmp_path / "w"
    prepare(reduced_demo[0], work)
    proc = start(work, config, f"{CELL}/model.pt")
    try:
        deadline = time.monotonic() + 300
        while not running("train.py", work):
            assert time.monotonic() < deadline and proc.poll() is None, "train job never seen"
            time.sleep(0.05)
        guard.watch(work / "results/demo/data")
        second = snakemake(work, "results/demo/tables/main.md", config=config, check=False)
        assert second.returncode != 0
        assert "cannot be locked" in second.stdout + second.stderr
        out, _ = proc.communicate(timeout=900)
        assert proc.returncode == 0, out[-3000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert (work / CELL / "model.pt").exists()
    guard.check()
    yaml.safe_load((work / CELL / "run.json").read_text())


@pytest.mark.slurm
def test_node_down_during_training_on_slurm(reduced_demo, long_cell, slurm_env, tmp_path, guard):
    """The test cluster's only node is set DOWN while a training job runs on it (what a node
    failure looks like to SLURM: the job is killed), then brought back. SLURM requeues the
    job or Snakemake resubmits it; training continues from last.pt and ends with the
    uninterrupted run's weights; nothing that was there is lost or corrupt."""
    ref, _ = long_cell
    work = tmp_path / "w"
    prepare(reduced_demo[0], work)
    guard.watch(work / "results")
    config = gpu_config(tmp_path / "slurm.yaml", **LONG)
    proc = subprocess.Popen(
        slurm_command(work, config, f"{CELL}/model.pt"),
        env=slurm_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    node = subprocess.run(
        ["sinfo", "-h", "-o", "%N"], env=slurm_env, capture_output=True, text=True, check=True
    ).stdout.split()[0]
    run, end = work / CELL, time.monotonic() + 600
    while not (run / "last.pt").exists():  # mid-run: a saved state, no model.pt yet
        assert proc.poll() is None, proc.stdout.read()[-3000:]
        assert time.monotonic() < end, "timed out waiting for last.pt"
        time.sleep(0.05)
    scontrol = ["scontrol", "update", f"nodename={node}"]
    subprocess.run([*scontrol, "state=down", "reason=fmdenoise-test"], env=slurm_env, check=True)
    killed_at = time.time()
    try:
        time.sleep(5)
    finally:  # back to service (the cluster's ReturnToService=2 may have done it already)
        subprocess.run([*scontrol, "state=resume"], env=slurm_env, capture_output=True)
    out, _ = proc.communicate(timeout=900)
    print(f"node down: run finished {time.time() - killed_at:.0f} s after the failure")
    assert proc.returncode == 0, out[-6000:]
    assert (run / "model.pt").stat().st_mtime > killed_at  # written after the failure
    log = (work / "results/demo/logs/train" / CELL.split("runs/")[1]).with_suffix(".log")
    assert "resuming from" in log.read_text(), log.read_text()[-2000:]
    run_json = yaml.safe_load((run / "run.json").read_text())
    assert 0 < run_json["resumed_from"] < LONG["steps"]
    print(f"node down at step >= {LONG['checkpoint_every']}: resumed from step "
          f"{run_json['resumed_from']} of {LONG['steps']}")  # fmt: skip
    a, b = weights(ref / CELL / "model.pt"), weights(run / "model.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    guard.check(rewritten=RERUN_RECORDS)
