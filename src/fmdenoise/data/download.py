"""Verified, resumable downloads and safe archive extraction.

Downloads are driven by a manifest entry (:class:`DownloadSpec`: url, expected sha256 or
``None`` to record it on first download, size, and an optional file the user fetched by hand).
HTTP transfers stream into ``<dest>.part`` with a progress bar, resume with ``Range`` requests,
retry transient failures (connection errors, time-outs, 5xx, 408/429, short bodies) with
exponential backoff, verify size and sha256, and only then rename the file to its final name.

Extraction (:func:`extract`) refuses members that would land outside the target folder
(absolute paths, ``..``, links pointing outside, devices) and caps the bytes written.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import tarfile
import time
import zipfile
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlparse

import requests
from tqdm import tqdm

from fmdenoise.errors import ArchiveError, DownloadError
from fmdenoise.io import atomic_dir, atomic_path, sha256_file

log = logging.getLogger(__name__)

CHUNK = 1 << 20
RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}


@dataclasses.dataclass(frozen=True)
class DownloadSpec:
    """One manifest entry (see the ``downloads`` section of the config schema)."""

    url: str
    sha256: str | None = None
    size: int | None = None
    manual_path: str | None = None

    @classmethod
    def from_config(cls, entry: Mapping[str, Any]) -> DownloadSpec:
        return cls(
            url=entry["url"],
            sha256=entry.get("sha256"),
            size=entry.get("size"),
            manual_path=entry.get("manual_path"),
        )


class _TransientError(Exception):
    """A failure worth retrying."""


def local_file_url_path(url: str, base: Path | None = None) -> Path | None:
    """Path named by a ``file:`` URL (``file:rel`` is relative to ``base``); None otherwise."""
    if not url.startswith("file:"):
        return None
    parsed = urlparse(url)
    if url.startswith("file://"):
        return Path(unquote(parsed.path))
    rel = Path(unquote(url[len("file:") :]))
    # normalised: ``results/demo/../../x`` must not need ``results/demo`` to exist yet
    return rel if rel.is_absolute() or base is None else Path(os.path.normpath(base / rel))


def _manual_hint(spec: DownloadSpec, dest: Path) -> str:
    where = spec.manual_path or str(dest)
    return (
        f"Download it by hand from {spec.url} and put it at {where}"
        + ("" if spec.manual_path else " (or set manual_path in the config)")
        + (f"; expected sha256 {spec.sha256}" if spec.sha256 else "")
        + "."
    )


def fetch(
    spec: DownloadSpec,
    dest: str | os.PathLike[str],
    *,
    base: Path | None = None,
    retries: int = 4,
    backoff: float = 1.0,
    timeout: float = 30.0,
    progress: bool = True,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Fetch ``spec`` to ``dest``, verified, and return its sha256.

    ``dest`` only ever appears complete and verified. ``<dest>.part`` is kept between attempts
    (and between runs) so that an interrupted HTTP transfer resumes where it stopped.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    manual = Path(spec.manual_path) if spec.manual_path else None
    local = local_file_url_path(spec.url, base)
    if manual is not None and manual.is_file():
        return _copy_verified(manual, dest, spec, origin=f"manual_path {manual}")
    if local is not None:
        if not local.is_file():
            raise DownloadError(
                f"{spec.url}: no such local file {local}. {_manual_hint(spec, dest)}"
            )
        return _copy_verified(local, dest, spec, origin=spec.url)
    if urlparse(spec.url).scheme not in ("http", "https"):
        raise DownloadError(f"{spec.url}: unsupported URL scheme")
    part = dest.with_name(dest.name + ".part")
    last_error: Exception | None = None
    for attempt in range(retries + 1):
        try:
            _http_to_part(spec, part, timeout=timeout, progress=progress)
            break
        except _TransientError as exc:
            last_error = exc
            if attempt < retries:
                delay = backoff * 2**attempt
                log.warning(
                    "%s: %s; retry %d/%d in %.1fs", spec.url, exc, attempt + 1, retries, delay
                )
                sleep(delay)
    else:
        raise DownloadError(
            f"{spec.url}: failed after {retries + 1} attempts ({last_error}). "
            f"{_manual_hint(spec, dest)}"
        )
    try:
        digest = _verify(part, spec, origin=spec.url)
    except DownloadError:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, dest)
    return digest


def _http_to_part(spec: DownloadSpec, part: Path, *, timeout: float, progress: bool) -> None:
    have = part.stat().st_size if part.exists() else 0
    if spec.size is not None and have > spec.size:
        part.unlink()
        have = 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    try:
        resp = requests.get(spec.url, headers=headers, stream=True, timeout=timeout)
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise _TransientError(f"{type(exc).__name__}: {exc}") from exc
    with resp:
        if resp.status_code == 416 and have:
            # Range not satisfiable: the part file is already complete (or stale): re-verify.
            if spec.size is None or have == spec.size:
                return
            part.unlink()
            raise _TransientError("server refused the resume range; restarting")
        if resp.status_code in RETRY_STATUS:
            raise _TransientError(f"HTTP {resp.status_code}")
        if resp.status_code >= 400:
            raise DownloadError(
                f"{spec.url}: HTTP {resp.status_code} {resp.reason}. "
                f"{_manual_hint(spec, part.with_name(part.name[: -len('.part')]))}"
            )
        if have and resp.status_code == 206:
            mode = "ab"
        else:
            mode, have = "wb", 0  # server ignored Range (200): start over
        length = resp.headers.get("Content-Length")
        expected = have + int(length) if length is not None else spec.size
        got = have
        bar = tqdm(
            total=expected,
            initial=have,
            unit="B",
            unit_scale=True,
            disable=not progress,
            desc=Path(urlparse(spec.url).path).name or spec.url,
            mininterval=1.0,
        )
        try:
            with open(part, mode) as fh:
                for block in resp.iter_content(CHUNK):
                    try:
                        fh.write(block)
                    except OSError as exc:
                        raise DownloadError(f"{spec.url}: cannot write {part}: {exc}") from exc
                    got += len(block)
                    bar.update(len(block))
        except requests.RequestException as exc:
            raise _TransientError(f"transfer interrupted after {got} bytes: {exc}") from exc
        finally:
            bar.close()
        if expected is not None and got < expected:
            raise _TransientError(f"body truncated: {got} of {expected} bytes")


def _verify(path: Path, spec: DownloadSpec, origin: str) -> str:
    size = path.stat().st_size
    if spec.size is not None and size != spec.size:
        raise DownloadError(f"{origin}: size {size} bytes, expected {spec.size}")
    digest = sha256_file(path)
    if spec.sha256 is not None and digest != spec.sha256:
        raise DownloadError(
            f"{origin}: checksum mismatch: expected sha256 {spec.sha256}, got {digest}"
        )
    if spec.sha256 is None:
        log.warning("%s: no sha256 in config; recorded %s (put it in the config)", origin, digest)
    return digest


def _copy_verified(src: Path, dest: Path, spec: DownloadSpec, origin: str) -> str:
    with atomic_path(dest) as tmp:
        shutil.copyfile(src, tmp)
        return _verify(tmp, spec, origin)


# --------------------------------------------------------------------------- extraction


def check_member_name(archive: Path, name: str, what: str = "member") -> PurePosixPath:
    """``name`` as a relative path that stays inside its folder, or :class:`ArchiveError`
    naming ``archive`` (an archive's member, a listed file of a folder source)."""
    p = PurePosixPath(name)
    if p.is_absolute() or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise ArchiveError(f"{archive}: {what} {name!r} has an absolute path; refusing it")
    if ".." in p.parts:
        raise ArchiveError(f"{archive}: {what} {name!r} escapes the target folder ('..')")
    return p


def _check_link_target(archive: Path, member: tarfile.TarInfo) -> None:
    target = PurePosixPath(member.linkname)
    base = PurePosixPath(member.name).parent if member.issym() else PurePosixPath()
    resolved: list[str] = []
    for part in (base / target).parts:
        if part == "..":
            if not resolved:
                raise ArchiveError(
                    f"{archive}: link {member.name!r} -> {member.linkname!r} points outside "
                    "the target folder"
                )
            resolved.pop()
        elif part not in (".", ""):
            resolved.append(part)
    if target.is_absolute():
        raise ArchiveError(
            f"{archive}: link {member.name!r} -> {member.linkname!r} points outside "
            "the target folder"
        )


def extract(
    archive: str | os.PathLike[str], dest: str | os.PathLike[str], max_bytes: int = 256 << 30
) -> Path:
    """Extract a zip or tar(.gz/.bz2/.xz) archive into ``dest`` atomically and safely.

    Raises :class:`ArchiveError` naming the archive and member for unsafe or corrupt content,
    or when more than ``max_bytes`` would be written (archive bomb).
    """
    archive, dest = Path(archive), Path(dest)
    if not archive.is_file():
        raise ArchiveError(f"{archive}: archive not found")
    with atomic_dir(dest) as tmp:
        if zipfile.is_zipfile(archive):
            _extract_zip(archive, tmp, max_bytes)
        else:
            _extract_tar(archive, tmp, max_bytes)
    return dest


def _copy_capped(src: Any, dst: Path, archive: Path, name: str, budget: list[int]) -> None:
    with open(dst, "wb") as out:
        while block := src.read(CHUNK):
            budget[0] -= len(block)
            if budget[0] < 0:
                raise ArchiveError(
                    f"{archive}: extracting {name!r} exceeds the size cap; refusing (archive bomb?)"
                )
            out.write(block)


def _extract_zip(archive: Path, target: Path, max_bytes: int) -> None:
    budget = [max_bytes]
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            for info in infos:
                check_member_name(archive, info.filename)
                if (info.external_attr >> 16) & 0o170000 == 0o120000:
                    raise ArchiveError(f"{archive}: member {info.filename!r} is a symbolic link")
            if sum(i.file_size for i in infos) > max_bytes:
                raise ArchiveError(f"{archive}: declared content exceeds the size cap {max_bytes}")
            for info in infos:
                out = target / info.filename
                if info.is_dir():
                    out.mkdir(parents=True, exist_ok=True)
                    continue
                out.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src:
                    _copy_capped(src, out, archive, info.filename, budget)
    except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
        raise ArchiveError(f"{archive}: corrupt or truncated zip ({exc})") from exc


def _extract_tar(archive: Path, target: Path, max_bytes: int) -> None:
    budget = [max_bytes]
    try:
        with tarfile.open(archive, "r:*") as tf:
            members = tf.getmembers()
            for m in members:
                check_member_name(archive, m.name)
                if m.issym() or m.islnk():
                    _check_link_target(archive, m)
                elif not (m.isfile() or m.isdir()):
                    raise ArchiveError(f"{archive}: member {m.name!r} is a device or fifo")
            for m in members:
                out = target / m.name
                if m.isdir():
                    out.mkdir(parents=True, exist_ok=True)
                elif m.isfile():
                    out.parent.mkdir(parents=True, exist_ok=True)
                    src = tf.extractfile(m)
                    assert src is not None
                    with src:
                        _copy_capped(src, out, archive, m.name, budget)
                else:  # link inside the folder, checked above
                    tf.extract(m, target, filter="data")
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise ArchiveError(f"{archive}: corrupt or truncated archive ({exc})") from exc
