"""Downloads against a real HTTP server on 127.0.0.1: verification, retries, resume."""

from __future__ import annotations

import hashlib
import os
import socket

import pytest

from fmdenoise.data.download import DownloadSpec, fetch
from fmdenoise.errors import DownloadError

PAYLOAD = os.urandom(3 * 1024 * 1024 + 17)
SHA = hashlib.sha256(PAYLOAD).hexdigest()


def no_sleep(_: float) -> None:
    pass


def test_good_file_verified(http_server, tmp_path):
    http_server.routes["/a.zip"] = (PAYLOAD, "ok")
    dest = tmp_path / "a.zip"
    digest = fetch(
        DownloadSpec(f"{http_server.url}/a.zip", SHA, len(PAYLOAD)), dest, progress=False
    )
    assert digest == SHA
    assert dest.read_bytes() == PAYLOAD
    assert not (tmp_path / "a.zip.part").exists()


def test_record_on_first_download(http_server, tmp_path):
    http_server.routes["/a.zip"] = (PAYLOAD, "ok")
    assert fetch(DownloadSpec(f"{http_server.url}/a.zip"), tmp_path / "a", progress=False) == SHA


def test_wrong_checksum_never_appears(http_server, tmp_path):
    http_server.routes["/a.zip"] = (PAYLOAD, "ok")
    bad = "0" * 64
    with pytest.raises(DownloadError) as err:
        fetch(DownloadSpec(f"{http_server.url}/a.zip", bad), tmp_path / "a.zip", progress=False)
    msg = str(err.value)
    assert bad in msg and SHA in msg and "/a.zip" in msg
    assert list(tmp_path.iterdir()) == []


def test_truncated_body_resumes_with_range(http_server, tmp_path):
    http_server.routes["/t.bin"] = (PAYLOAD, "truncate_once")
    digest = fetch(
        DownloadSpec(f"{http_server.url}/t.bin", SHA),
        tmp_path / "t.bin",
        progress=False,
        sleep=no_sleep,
    )
    assert digest == SHA
    ranges = [r for p, r in http_server.requests if p == "/t.bin"]
    assert ranges[0] is None
    # resumed from what had been written (whole 1 MiB chunks), not from zero
    offset = int(ranges[1].removeprefix("bytes=").rstrip("-"))
    assert 0 < offset <= len(PAYLOAD) // 2


def test_server_error_then_success(http_server, tmp_path):
    http_server.routes["/e.bin"] = (PAYLOAD, "fail:2")
    delays: list[float] = []
    fetch(
        DownloadSpec(f"{http_server.url}/e.bin", SHA),
        tmp_path / "e.bin",
        progress=False,
        sleep=delays.append,
        backoff=0.5,
    )
    assert delays == [0.5, 1.0]  # exponential backoff
    assert http_server.counts["/e.bin"] == 3


def test_resume_from_existing_part(http_server, tmp_path):
    http_server.routes["/r.bin"] = (PAYLOAD, "ok")
    (tmp_path / "r.bin.part").write_bytes(PAYLOAD[:1000])
    fetch(DownloadSpec(f"{http_server.url}/r.bin", SHA), tmp_path / "r.bin", progress=False)
    assert http_server.requests == [("/r.bin", "bytes=1000-")]
    assert (tmp_path / "r.bin").read_bytes() == PAYLOAD


def test_server_ignoring_range_restarts_cleanly(http_server, tmp_path):
    http_server.routes["/n.bin"] = (PAYLOAD, "norange")
    (tmp_path / "n.bin.part").write_bytes(b"garbage" * 10)
    assert (
        fetch(DownloadSpec(f"{http_server.url}/n.bin", SHA), tmp_path / "n.bin", progress=False)
        == SHA
    )


def test_404_fails_at_once_with_manual_hint(http_server, tmp_path):
    with pytest.raises(DownloadError) as err:
        fetch(
            DownloadSpec(f"{http_server.url}/missing.zip", SHA),
            tmp_path / "m.zip",
            progress=False,
            sleep=no_sleep,
        )
    msg = str(err.value)
    assert "HTTP 404" in msg and "missing.zip" in msg and str(tmp_path / "m.zip") in msg
    assert http_server.counts["/missing.zip"] == 1


def test_offline_gives_clear_error(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    url = f"http://127.0.0.1:{port}/x.zip"
    with pytest.raises(DownloadError) as err:
        fetch(
            DownloadSpec(url, manual_path=str(tmp_path / "manual/x.zip")),
            tmp_path / "x.zip",
            progress=False,
            retries=2,
            sleep=no_sleep,
        )
    msg = str(err.value)
    assert url in msg and "3 attempts" in msg and "manual/x.zip" in msg and "by hand" in msg


def test_manual_path_used_and_verified(tmp_path):
    manual = tmp_path / "hand.zip"
    manual.write_bytes(PAYLOAD)
    spec = DownloadSpec("https://example.invalid/x.zip", SHA, manual_path=str(manual))
    assert fetch(spec, tmp_path / "out.zip", progress=False) == SHA
    bad = DownloadSpec("https://example.invalid/x.zip", "1" * 64, manual_path=str(manual))
    with pytest.raises(DownloadError, match="checksum mismatch"):
        fetch(bad, tmp_path / "out2.zip", progress=False)
    assert not (tmp_path / "out2.zip").exists()


def test_relative_file_url(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.tar").write_bytes(PAYLOAD)
    assert (
        fetch(
            DownloadSpec("file:src/a.tar", SHA),
            tmp_path / "d" / "a.tar",
            base=tmp_path,
            progress=False,
        )
        == SHA
    )
    with pytest.raises(DownloadError, match="no such local file"):
        fetch(DownloadSpec("file:src/none.tar"), tmp_path / "d" / "b.tar", base=tmp_path)
