"""No space left on device while writing: the error says so, nothing partial stays."""

from __future__ import annotations

import errno
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tifffile

from fmdenoise.evaluate.predict import predict_dataset
from fmdenoise.io import DiskFullError, write_json, write_tiff

from ..unit.test_evaluation import NORM
from ..unit.test_ingest import STACK_CFG, make_stacks


@pytest.fixture
def small_disk(tmp_path, monkeypatch) -> Iterator[Path]:
    """A 256 KiB tmpfs (a real full disk) where mounting is allowed (root); elsewhere a folder
    whose TIFF writes fail with ENOSPC after writing part of the file."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    mounted = (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], capture_output=True
        ).returncode
        == 0
    )
    if not mounted:
        real = tifffile.imwrite

        def full(path, data, **kwargs):
            if Path(path).parent.is_relative_to(mnt) and np.asarray(data).nbytes > 64 * 1024:
                Path(path).write_bytes(b"II*\0" + b"\0" * 1000)  # the part that fitted
                raise OSError(errno.ENOSPC, "No space left on device", str(path))
            return real(path, data, **kwargs)

        monkeypatch.setattr(tifffile, "imwrite", full)
    try:
        yield mnt
    finally:
        if mounted:
            subprocess.run(["umount", str(mnt)], check=False)


def test_full_disk_on_a_tiff(small_disk, guard):
    write_json(small_disk / "earlier.json", {"ok": True})
    guard.watch(small_disk)
    big = np.ones((512, 512), np.float32)  # 1 MiB: does not fit
    with pytest.raises(DiskFullError) as err:
        write_tiff(small_disk / "big.tif", big)
    msg = str(err.value)
    assert "big.tif" in msg and "no space left" in msg.lower()
    assert not (small_disk / "big.tif").exists()
    guard.check()


def test_full_disk_during_predictions(tmp_path, small_disk, guard):
    make_stacks(tmp_path / "src", n_train=4, n_test=3)
    from fmdenoise.data.ingest import ingest_dataset

    ingest_dataset(tmp_path / "src", STACK_CFG, tmp_path / "data", val_fraction=0.25, seed=0)
    guard.watch(small_disk)
    big = tmp_path / "data" / "test" / "low"
    for tif in big.glob("*.tif"):  # make the test images large enough to fill the disk
        tifffile.imwrite(tif, np.random.default_rng(0).random((256, 256), np.float32))
    with pytest.raises(DiskFullError, match="predictions"):
        predict_dataset({"kind": "raw"}, tmp_path / "data", small_disk / "predictions", NORM)
    assert not (small_disk / "predictions").exists()
    guard.check()
