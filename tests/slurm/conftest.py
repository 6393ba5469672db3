"""A real one-node SLURM cluster for the tests (``tests/slurm/cluster.sh``).

The session fixture starts it if it is not running (installing slurm-wlm and munge with apt
when missing, which needs root) and stops it afterwards if it started it. Where that is
impossible the SLURM tests are skipped with the reason, unless ``FMDENOISE_REQUIRE_SLURM=1``
(set by ``.ci/run``), which turns it into a failure.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest

from ..helpers import ROOT

CLUSTER = ROOT / "tests" / "slurm" / "cluster.sh"


@pytest.fixture(scope="session")
def slurm_env() -> Iterator[dict[str, str]]:
    """Environment (with ``SLURM_CONF``) for commands that talk to the test cluster."""
    status = subprocess.run([CLUSTER, "status"], capture_output=True, text=True)
    was_running = status.returncode == 0 and "idle" in status.stdout
    proc = subprocess.run([CLUSTER, "start"], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        reason = f"no SLURM cluster: {proc.stderr.strip()[-500:]}"
        if os.environ.get("FMDENOISE_REQUIRE_SLURM") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    env = dict(os.environ)
    key, value = proc.stdout.strip().splitlines()[-1].removeprefix("export ").split("=", 1)
    env[key] = value
    try:
        yield env
    finally:
        if not was_running:
            subprocess.run([CLUSTER, "stop"], capture_output=True, timeout=120)
