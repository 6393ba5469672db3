"""Run-time settings of the process: transparent huge pages for torch's CPU buffers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

THP_MODE = Path("/sys/kernel/mm/transparent_hugepage/enabled")

#: imports fmdenoise, then torch; fills a 64 MB tensor; prints the variable and the huge pages
#: the process holds
PROBE = """
import json, fmdenoise, os, torch
x = torch.ones(16 * 1024 * 1024)
huge = 0
for line in open("/proc/self/smaps_rollup"):
    if line.startswith("AnonHugePages:"):
        huge = int(line.split()[1])
print(json.dumps({"env": os.environ.get("THP_MEM_ALLOC_ENABLE"), "huge_kb": huge}))
"""


def probe(value: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}
    if value is not None:
        env["THP_MEM_ALLOC_ENABLE"] = value
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_fmdenoise_turns_on_torch_huge_pages_unless_the_user_chose():
    assert probe(None)["env"] == "1"
    assert probe("0")["env"] == "0"


@pytest.mark.skipif(
    not THP_MODE.exists() or "[madvise]" not in THP_MODE.read_text(),
    reason="the kernel's transparent huge pages are not in madvise mode here",
)
def test_large_cpu_tensors_are_backed_by_huge_pages():
    """In madvise mode only the buffers torch advises get huge pages: with the variable, a
    64 MB tensor is (almost) all huge pages; with THP_MEM_ALLOC_ENABLE=0, none of it."""
    assert probe(None)["huge_kb"] >= 32 * 1024
    assert probe("0")["huge_kb"] < 4 * 1024
