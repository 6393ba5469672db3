"""The fault suite's bookkeeping: a guard on output folders and the summary line.

Every fault test gets ``guard``: ``guard.watch(folder)`` records the files there before the
fault; ``guard.check()`` (called by the test after the fault) verifies that no temporary
file is left, that every file that was there is unchanged (unless named as rewritten), and
that every file that looks finished is whole (TIFF, JSON, CSV, NPY, PT, PNG, archives all
parse). At the end of the session the suite prints
``faults: N tried, N handled, 0 outputs lost``.
"""

from __future__ import annotations

import fnmatch
import json
import re
import tarfile
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
import torch

from ..helpers import digests

TMP = re.compile(r"^\..+\.tmp-[0-9a-f]{8}$")
STATS = pytest.StashKey[dict[str, int]]()


def whole(path: Path) -> None:
    """Raise if ``path`` (a file that looks finished) does not parse."""
    name = path.name
    if name.endswith((".tif", ".tiff")):
        tifffile.imread(path)
    elif name.endswith(".json"):
        json.loads(path.read_text())
    elif name.endswith(".csv"):
        pd.read_csv(path)
    elif name.endswith(".npy"):
        np.load(path, mmap_mode="r")
    elif name.endswith(".pt"):
        torch.load(path, map_location="cpu", weights_only=True)
    elif name.endswith(".png"):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    elif name.endswith(".zip"):
        assert zipfile.ZipFile(path).testzip() is None
    elif name.endswith((".tar.gz", ".tgz", ".tar")):
        with tarfile.open(path) as tf:
            tf.getmembers()


class Guard:
    def __init__(self) -> None:
        self.folders: dict[Path, dict[str, str]] = {}
        self.lost: list[str] = []

    def watch(self, folder: Path) -> None:
        self.folders[folder] = digests(folder) if folder.exists() else {}

    def check(self, rewritten: Iterable[str] = ()) -> None:
        """``rewritten``: glob patterns (relative to the watched folder) of files a rerun
        writes anew by design (its outputs, logs and benchmark records)."""
        patterns = list(rewritten)
        for folder, before in self.folders.items():
            if not folder.exists():
                self.lost += [f"{folder}/{k} (folder gone)" for k in before]
                continue
            after = digests(folder)
            for rel, digest in before.items():
                redone = any(fnmatch.fnmatch(rel, pattern) for pattern in patterns)
                if not redone and after.get(rel) != digest:
                    self.lost.append(f"{folder}/{rel}: changed or removed")
            for path in folder.rglob("*"):
                if TMP.match(path.name):
                    self.lost.append(f"{path}: temporary left behind")
                elif path.is_file():
                    try:
                        whole(path)
                    except Exception as exc:
                        self.lost.append(f"{path}: looks finished but is corrupt ({exc})")
        assert not self.lost, "\n".join(self.lost)


@pytest.fixture
def guard(request) -> Iterator[Guard]:
    g = Guard()
    request.node.fault_guard = g
    yield g


def pytest_configure(config: pytest.Config) -> None:
    config.stash[STATS] = {"tried": 0, "handled": 0, "lost": 0}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if report.when == "call" and "faults" in Path(str(item.path)).parts:
        stats = item.config.stash[STATS]
        stats["tried"] += 1
        stats["handled"] += report.passed
        guard = getattr(item, "fault_guard", None)
        stats["lost"] += bool(guard and guard.lost)
    return report


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    stats = config.stash.get(STATS, None)
    if stats and stats["tried"]:
        terminalreporter.write_line(
            f"faults: {stats['tried']} tried, {stats['handled']} handled, "
            f"{stats['lost']} outputs lost"
        )
