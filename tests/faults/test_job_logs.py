"""A failing Snakemake job's own log says why, through the real rules: the error, its
traceback, and its one-line message at the end (not only Snakemake's console, or a SLURM
output file the user does not know about). Representative failures: a bad image read by a
BM3D worker process, a corrupt checkpoint (a project error), a truncated patch file (an error
the project does not anticipate)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ..conftest import LONG_CELL
from ..helpers import prepare, snakemake

pytestmark = [pytest.mark.slow, pytest.mark.workflow]

RES = "results/demo"


def copy_of(reduced_demo, tmp_path: Path) -> tuple[Path, Path]:
    """A workdir holding the reduced demo's data, patches and weights; and its config."""
    work = tmp_path / "w"
    prepare(reduced_demo[0], work)
    return work, reduced_demo[1]


def failed_training(work: Path, config: Path) -> list[str]:
    """Train the long cell; it must fail. The non-empty lines of its log."""
    run = LONG_CELL.removeprefix(f"{RES}/runs/")
    return failed_log(work, config, f"{LONG_CELL}/model.pt", f"train/{run}.log")


def failed_log(work: Path, config: Path, target: str, log: str) -> list[str]:
    """Run ``target``; it must fail. The non-empty lines of the job's log."""
    proc = snakemake(work, target, "--set-threads", "predict=2", config=config, check=False)
    assert proc.returncode != 0, proc.stderr[-3000:]
    return [line for line in (work / RES / "logs" / log).read_text().splitlines() if line]


def test_bad_image_in_a_bm3d_worker(reduced_demo, tmp_path, guard):
    work, config = copy_of(reduced_demo, tmp_path)
    bad = work / RES / "data/actin-demo/test/low/test-0003.tif"
    bad.write_bytes(b"II*\0 not really a TIFF")
    guard.watch(work / RES / "predictions")
    lines = failed_log(
        work, config, f"{RES}/predictions/bm3d/actin-demo", "predict/bm3d/actin-demo.log"
    )
    text = "\n".join(lines)
    assert "ERROR fmdenoise: job failed: ImageError:" in text and "test-0003.tif" in lines[-1]
    assert "Traceback (most recent call last)" in text
    assert "_bm3d_file" in text  # the worker's own traceback, from the other process
    assert not (work / RES / "predictions/bm3d/actin-demo").exists()
    guard.check()


def test_corrupt_checkpoint_in_training(reduced_demo, tmp_path, guard):
    work, config = copy_of(reduced_demo, tmp_path)
    ckpt = work / RES / "pretrained/drunet.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    guard.watch(work / RES / "runs")
    lines = failed_training(work, config)
    assert "job failed: CheckpointError:" in "\n".join(lines)
    assert "drunet.pt" in lines[-1] and lines[-1].startswith("fmdenoise.errors.CheckpointError")
    guard.check()


def test_truncated_patches_are_an_unexpected_error_with_a_traceback(reduced_demo, tmp_path):
    work, config = copy_of(reduced_demo, tmp_path)
    patches = work / RES / "patches/actin-demo/train_low.npy"
    with patches.open("r+b") as f:
        f.truncate(patches.stat().st_size // 2)
    lines = failed_training(work, config)
    text = "\n".join(lines)
    assert "job failed unexpectedly: ValueError:" in text
    assert "Traceback (most recent call last)" in text and "numpy" in text
    assert lines[-1].startswith("ValueError:")
