"""Hostile and broken archives: nothing is extracted, outside or under the final folder."""

from __future__ import annotations

import io
import struct
import tarfile
import zipfile
from pathlib import Path

import pytest

from fmdenoise.data.download import extract
from fmdenoise.errors import ArchiveError


def tar_with(path, *members):
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tf:
        ok = tarfile.TarInfo("ok.txt")
        ok.size = 2
        tf.addfile(ok, io.BytesIO(b"ok"))
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if data else None)
    return path


def member(name, kind=tarfile.REGTYPE, link="", data=b"x"):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, data if kind == tarfile.REGTYPE else None


CASES = {
    "path traversal": (member("../../evil.txt"), "escapes"),
    "absolute path": (member("/tmp/evil.txt"), "absolute"),
    "symlink outside": (member("d/l", tarfile.SYMTYPE, "../../../etc/passwd"), "points outside"),
    "absolute symlink": (member("d/l", tarfile.SYMTYPE, "/etc/passwd"), "points outside"),
    "hard link outside": (member("d/h", tarfile.LNKTYPE, "../../etc/passwd"), "points outside"),
    "device node": (member("d/dev", tarfile.CHRTYPE), "device"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_tar(tmp_path, guard, case):
    bad, message = CASES[case]
    archive = tar_with(tmp_path / "src" / "bad.tar.gz", bad)
    dest = tmp_path / "dest" / "deeper"
    dest.mkdir(parents=True)
    guard.watch(tmp_path / "dest")
    with pytest.raises(ArchiveError, match=message) as err:
        extract(archive, dest / "out")
    assert "bad.tar.gz" in str(err.value)
    assert not (dest / "out").exists()
    assert not list(tmp_path.rglob("evil.txt")) and not Path("/tmp/evil.txt").exists()
    guard.check()


def lying_zip(path, real: int, declared: int):
    """A zip whose member inflates to ``real`` bytes but declares ``declared``."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("big.bin", b"\0" * real)
    data = bytearray(path.read_bytes())
    local = data.index(b"PK\x03\x04")
    struct.pack_into("<I", data, local + 22, declared)  # local header: uncompressed size
    central = data.index(b"PK\x01\x02")
    struct.pack_into("<I", data, central + 24, declared)  # central directory
    path.write_bytes(bytes(data))
    return path


def test_bomb_larger_than_declared(tmp_path, guard):
    archive = lying_zip(tmp_path / "bomb.zip", real=8 << 20, declared=1000)
    guard.watch(tmp_path / "dest")
    with pytest.raises(ArchiveError, match=r"bomb\.zip"):
        extract(archive, tmp_path / "dest" / "out", max_bytes=1 << 20)
    assert not (tmp_path / "dest" / "out").exists()
    guard.check()


def test_bomb_over_the_cap(tmp_path, guard):
    with zipfile.ZipFile(tmp_path / "b.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("big.bin", b"\0" * (8 << 20))  # 8 MiB from ~8 KiB
    guard.watch(tmp_path / "dest")
    with pytest.raises(ArchiveError, match="size cap"):
        extract(tmp_path / "b.zip", tmp_path / "dest" / "out", max_bytes=1 << 20)
    guard.check()


@pytest.mark.parametrize("kind", ["tar.gz", "zip"])
def test_truncated_archive(tmp_path, guard, kind):
    path = tmp_path / f"t.{kind}"
    blob = bytes(range(256)) * 4000
    if kind == "zip":
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("a.bin", blob)
    else:
        with tarfile.open(path, "w:gz") as tf:
            info = tarfile.TarInfo("a.bin")
            info.size = len(blob)
            tf.addfile(info, io.BytesIO(blob))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    (tmp_path / "dest" / "out").mkdir(parents=True)
    (tmp_path / "dest" / "out" / "earlier.txt").write_text("an earlier good extraction")
    guard.watch(tmp_path / "dest")
    with pytest.raises(ArchiveError, match=rf"t\.{kind}"):
        extract(path, tmp_path / "dest" / "out")
    guard.check()  # the earlier extraction is untouched
