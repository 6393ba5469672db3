"""Safe archive extraction: escaping members, links, bombs and truncated archives."""

from __future__ import annotations

import io
import tarfile
import zipfile

import pytest

from fmdenoise.data.download import extract
from fmdenoise.errors import ArchiveError


def make_tar(path, members):
    with tarfile.open(path, "w:gz") as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def file_member(name, data=b"x"):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def link_member(name, target, kind=tarfile.SYMTYPE):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


def test_tar_and_zip_extract(tmp_path):
    tar = make_tar(
        tmp_path / "a.tar.gz", [file_member("d/a.txt", b"hello"), link_member("d/l", "a.txt")]
    )
    out = extract(tar, tmp_path / "out")
    assert (out / "d" / "a.txt").read_bytes() == b"hello"
    assert (out / "d" / "l").read_bytes() == b"hello"
    z = tmp_path / "a.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("x/y.txt", b"zip")
    assert (extract(z, tmp_path / "zout") / "x" / "y.txt").read_bytes() == b"zip"


@pytest.mark.parametrize(
    ("member", "fragment"),
    [
        (file_member("../evil.txt"), "escapes"),
        (file_member("/etc/evil.txt"), "absolute"),
        (link_member("d/l", "../../outside"), "points outside"),
        (link_member("d/l", "/etc/passwd"), "points outside"),
        (link_member("d/h", "../../etc/passwd", tarfile.LNKTYPE), "points outside"),
    ],
)
def test_tar_escapes_refused(tmp_path, member, fragment):
    tar = make_tar(tmp_path / "bad.tar.gz", [file_member("ok.txt"), member])
    with pytest.raises(ArchiveError, match=fragment) as err:
        extract(tar, tmp_path / "out")
    assert "bad.tar.gz" in str(err.value)
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "evil.txt").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["bad.tar.gz"]


def test_zip_traversal_refused(tmp_path):
    z = tmp_path / "bad.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("../evil.txt", b"x")
    with pytest.raises(ArchiveError, match="escapes"):
        extract(z, tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists()


def test_bomb_capped(tmp_path):
    z = tmp_path / "bomb.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("big.bin", b"\0" * (4 << 20))
    with pytest.raises(ArchiveError, match="size cap"):
        extract(z, tmp_path / "out", max_bytes=1 << 20)
    tar = make_tar(tmp_path / "bomb.tar.gz", [file_member("big.bin", b"\0" * (4 << 20))])
    with pytest.raises(ArchiveError, match="size cap"):
        extract(tar, tmp_path / "out2", max_bytes=1 << 20)
    assert not (tmp_path / "out").exists() and not (tmp_path / "out2").exists()


def test_truncated_archive(tmp_path):
    tar = make_tar(tmp_path / "t.tar.gz", [file_member("a.bin", bytes(range(256)) * 4000)])
    data = tar.read_bytes()
    tar.write_bytes(data[: len(data) // 2])
    with pytest.raises(ArchiveError, match="corrupt or truncated"):
        extract(tar, tmp_path / "out")
    assert not (tmp_path / "out").exists()
