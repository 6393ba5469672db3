"""Shared fixtures: the reference data folder, a programmable HTTP server on 127.0.0.1, the
reduced demo run, and the one-node SLURM test cluster (used by the SLURM and fault tests)."""

from __future__ import annotations

import http.server
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT.parent / "shared" / "reference"


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    if not REFERENCE.is_dir():
        pytest.skip(f"reference data folder {REFERENCE} is absent (it sits beside the checkout)")
    return REFERENCE


class Server:
    """A tiny file server whose behaviour per path is set by the test.

    ``routes[path] = (payload, mode)`` with mode one of: ``ok`` (Range honoured), ``norange``
    (Range ignored), ``truncate_once`` (first response cut in half), ``truncate`` (every
    response cut in half), ``fail:N`` (N x HTTP 500 first), ``status:CODE``, ``sleep:S`` (no
    answer for S seconds). ``requests`` records (path, Range header) of every GET request,
    ``heads`` the path of every HEAD request (answered with the size).
    """

    def __init__(self) -> None:
        self.routes: dict[str, tuple[bytes, str]] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.heads: list[str] = []
        self.counts: dict[str, int] = {}
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:  # sizes, as a file server answers them
                server.heads.append(self.path)
                if self.path not in server.routes:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(server.routes[self.path][0])))
                self.end_headers()

            def do_GET(self) -> None:
                server.requests.append((self.path, self.headers.get("Range")))
                n = server.counts[self.path] = server.counts.get(self.path, 0) + 1
                if self.path not in server.routes:
                    self.send_error(404)
                    return
                payload, mode = server.routes[self.path]
                if mode.startswith("sleep:"):
                    time.sleep(float(mode.split(":")[1]))
                    return
                if mode.startswith("status:"):
                    self.send_error(int(mode.split(":")[1]))
                    return
                if mode.startswith("fail:") and n <= int(mode.split(":")[1]):
                    self.send_error(500)
                    return
                start = 0
                rng = self.headers.get("Range")
                if rng and mode != "norange":
                    start = int(rng.split("=")[1].split("-")[0])
                body = payload[start:]
                self.send_response(206 if start else 200)
                self.send_header("Content-Length", str(len(body)))
                if start:
                    self.send_header(
                        "Content-Range", f"bytes {start}-{len(payload) - 1}/{len(payload)}"
                    )
                self.end_headers()
                if mode == "truncate" or (mode == "truncate_once" and n == 1):
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def http_server() -> Iterator[Server]:
    server = Server()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def reduced_demo(tmp_path_factory) -> tuple[Path, Path, str]:
    """The reduced demo (one dataset, 20 steps) run to the end locally with ``--cores 2``:
    ``(workdir, config, snakemake output)``. The workflow tests check it; the SLURM tests
    compare their results with it."""
    from .helpers import reduced_demo_config, snakemake

    work = tmp_path_factory.mktemp("reduced")
    config = reduced_demo_config(work / "reduced.yaml")
    proc = snakemake(work, config=config)
    return work, config, proc.stdout + proc.stderr


#: the training budget of the long cell: long enough to interrupt a running job
LONG = {"steps": 300, "val_every": 100, "checkpoint_every": 10}
LONG_CELL = "results/demo/runs/drunet/actin-demo/mae/lr0.001/pretrained/none/seed0"


@pytest.fixture(scope="session")
def long_cell(reduced_demo, tmp_path_factory) -> tuple[Path, Path]:
    """One cell of the reduced demo trained for 300 steps without interruption: (workdir,
    config). The fault and SLURM tests interrupt the same cell and compare with it."""
    from .helpers import prepare, reduced_demo_config, snakemake

    work = tmp_path_factory.mktemp("long_ref")
    prepare(reduced_demo[0], work)
    config = reduced_demo_config(work / "long.yaml", **LONG)
    snakemake(work, f"{LONG_CELL}/model.pt", config=config)
    return work, config


CLUSTER = ROOT / "tests" / "slurm" / "cluster.sh"


@pytest.fixture(scope="session")
def slurm_env() -> Iterator[dict[str, str]]:
    """Environment (with ``SLURM_CONF``) for commands that talk to the test cluster
    (``tests/slurm/cluster.sh``). Started if it is not running (installing slurm-wlm and munge
    with apt when missing, which needs root) and stopped afterwards if started here. Where that
    is impossible the SLURM tests are skipped with the reason, unless
    ``FMDENOISE_REQUIRE_SLURM=1`` (set by ``.ci/run``), which turns it into a failure."""
    status = subprocess.run([CLUSTER, "status"], capture_output=True, text=True)
    # a cluster busy with someone's jobs (node mix/alloc/comp) is running too: never stop it
    was_running = status.returncode == 0 and any(
        state in status.stdout for state in ("idle", "mix", "alloc", "comp")
    )
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
