"""Run-time settings of the process: transparent huge pages for torch's CPU buffers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

THP_MODE = Path("/sys/kernel/mm/transparent_hugepage/enabled")

#: imports what the job scripts import (fmdenoise and torch among them), then enters the job
#: wrapper every script enters first (``log_to``), fills a 64 MB tensor, and prints the variable
#: as it was after the imports and inside the job, and the huge pages the process holds
PROBE = """
import json, os, torch
import fmdenoise.evaluate.predict, fmdenoise.evaluate.transfer, fmdenoise.train.loop
from fmdenoise.logs import log_to
imported = os.environ.get("THP_MEM_ALLOC_ENABLE")
with log_to(None):
    x = torch.ones(16 * 1024 * 1024)
huge = 0
for line in open("/proc/self/smaps_rollup"):
    if line.startswith("AnonHugePages:"):
        huge = int(line.split()[1])
print(json.dumps({"imported": imported, "env": os.environ.get("THP_MEM_ALLOC_ENABLE"),
                  "huge_kb": huge}))
"""


def probe(value: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}
    if value is not None:
        env["THP_MEM_ALLOC_ENABLE"] = value
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_job_turns_on_torch_huge_pages_unless_the_user_chose():
    """Importing the library changes nothing; the job wrapper (and the command line) set the
    variable, keeping a user's choice."""
    assert probe(None)["imported"] is None and probe(None)["env"] == "1"
    assert probe("0")["env"] == "0"


def test_the_command_line_turns_on_huge_pages(monkeypatch):
    from fmdenoise.cli import main

    monkeypatch.delenv("THP_MEM_ALLOC_ENABLE", raising=False)
    assert main(["check-config", "config.yaml"]) == 0
    assert os.environ["THP_MEM_ALLOC_ENABLE"] == "1"


@pytest.mark.skipif(
    not THP_MODE.exists() or "[madvise]" not in THP_MODE.read_text(),
    reason="the kernel's transparent huge pages are not in madvise mode here",
)
def test_large_cpu_tensors_are_backed_by_huge_pages():
    """In madvise mode only the buffers torch advises get huge pages: with the variable, a
    64 MB tensor is (almost) all huge pages; with THP_MEM_ALLOC_ENABLE=0, none of it."""
    assert probe(None)["huge_kb"] >= 32 * 1024
    assert probe("0")["huge_kb"] < 4 * 1024
