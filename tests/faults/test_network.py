"""Network faults, each against a server started on 127.0.0.1 inside the test."""

from __future__ import annotations

import hashlib
import io
import os
import socket
import zipfile

import pytest

from fmdenoise.data.download import DownloadSpec, fetch
from fmdenoise.errors import DownloadError


def _zip_payload() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("data.bin", os.urandom(256 * 1024 + 5))
    return buf.getvalue()


PAYLOAD = _zip_payload()  # a real archive, so the guard can check it is whole
SHA = hashlib.sha256(PAYLOAD).hexdigest()


def get(url, dest, **kwargs):
    kwargs.setdefault("retries", 2)
    return fetch(
        DownloadSpec(url, kwargs.pop("sha256", SHA)),
        dest,
        progress=False,
        sleep=lambda _: None,
        **kwargs,
    )


def test_connection_refused(tmp_path, guard):
    guard.watch(tmp_path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DownloadError, match=r"failed after 3 attempts.*(refused|Connection)"):
        get(f"http://127.0.0.1:{port}/a.zip", tmp_path / "a.zip")
    guard.check()
    assert not (tmp_path / "a.zip").exists()


def test_timeout(http_server, tmp_path, guard):
    http_server.routes["/slow.zip"] = (PAYLOAD, "sleep:3")
    guard.watch(tmp_path)
    with pytest.raises(DownloadError, match=r"failed after 2 attempts.*(timed out|timeout)"):
        get(f"{http_server.url}/slow.zip", tmp_path / "slow.zip", retries=1, timeout=0.5)
    guard.check()
    assert not (tmp_path / "slow.zip").exists()


@pytest.mark.parametrize(("status", "attempts"), [(404, 1), (500, 3)])
def test_http_errors(http_server, tmp_path, guard, status, attempts):
    http_server.routes["/x.zip"] = (PAYLOAD, f"status:{status}")
    guard.watch(tmp_path)
    with pytest.raises(DownloadError, match=f"HTTP {status}") as err:
        get(f"{http_server.url}/x.zip", tmp_path / "x.zip")
    assert str(tmp_path / "x.zip") in str(err.value)  # where to put it by hand
    assert http_server.counts["/x.zip"] == attempts  # 404 at once, 500 retried
    guard.check()


def test_server_error_then_success(http_server, tmp_path, guard):
    http_server.routes["/x.zip"] = (PAYLOAD, "fail:2")
    guard.watch(tmp_path)
    assert get(f"{http_server.url}/x.zip", tmp_path / "x.zip") == SHA
    guard.check(rewritten=["x.zip"])


def test_body_truncated_mid_stream_every_time(http_server, tmp_path, guard):
    http_server.routes["/t.zip"] = (PAYLOAD, "truncate")
    guard.watch(tmp_path)
    with pytest.raises(DownloadError, match="failed after 3 attempts"):
        get(f"{http_server.url}/t.zip", tmp_path / "t.zip")
    assert not (tmp_path / "t.zip").exists()
    guard.check()


def test_body_truncated_once_resumes(http_server, tmp_path, guard):
    http_server.routes["/t.zip"] = (PAYLOAD, "truncate_once")
    guard.watch(tmp_path)
    assert get(f"{http_server.url}/t.zip", tmp_path / "t.zip") == SHA
    assert http_server.counts["/t.zip"] == 2  # (resume with Range: tests/unit/test_download)
    guard.check(rewritten=["t.zip"])


def test_server_ignoring_range(http_server, tmp_path, guard):
    http_server.routes["/r.zip"] = (PAYLOAD, "norange")
    (tmp_path / "r.zip.part").write_bytes(PAYLOAD[:1000])  # an earlier interrupted run
    guard.watch(tmp_path)
    assert get(f"{http_server.url}/r.zip", tmp_path / "r.zip") == SHA
    assert (tmp_path / "r.zip").read_bytes() == PAYLOAD
    guard.check(rewritten=["r.zip.part"])


def test_wrong_checksum(http_server, tmp_path, guard):
    http_server.routes["/c.zip"] = (PAYLOAD, "ok")
    guard.watch(tmp_path)
    wrong = "0" * 64
    with pytest.raises(DownloadError) as err:
        get(f"{http_server.url}/c.zip", tmp_path / "c.zip", sha256=wrong)
    assert wrong in str(err.value) and SHA in str(err.value)  # expected and actual
    assert not list(tmp_path.iterdir())  # never under its final name, no part kept
    guard.check()
