"""Folder sources: plain files under a remote (or local) folder, found from its listing.

GigaDB publishes the Hagen et al. data as one folder per dataset of plain TIFF stacks
(``03-mito-confocal/mito-confocal-lowsnr.tif``), not as archives. A ``kind: folder`` download
names such a folder by its base URL (``hagen_url``, then ``hagen_mirrors``); this module

- lists it (:func:`list_folder`): the server's HTML index pages read by fsspec's HTTP
  filesystem, walked by us level by level so that a link leaving the base folder (``../``,
  another host, an absolute path, a query) is never followed, and every name is checked as an
  archive member is; a ``file:`` URL or a plain path lists a local folder the same way;
- matches each dataset's globs against the listed relative paths (:func:`match_files`);
- fetches only the matching files (:func:`fetch_dataset_files`), each through
  :func:`~fmdenoise.data.download.fetch` (resumable ``.part``, retries, size and sha256
  verified), from the first base URL that has it, into a download cache keeping their
  relative paths, and links them into the dataset's source folder. A file put by hand under
  the download's ``manual_path`` folder, at its relative path, is used instead of the network.

Sizes come from HTTP ``HEAD`` requests (index pages do not give them in a standard form).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote, unquote, urlparse

from fmdenoise.data.download import DownloadSpec, check_member_name, fetch, local_file_url_path
from fmdenoise.data.ingest import glob_regex
from fmdenoise.errors import ArchiveError, DownloadError
from fmdenoise.io import atomic_dir, sha256_file

log = logging.getLogger(__name__)

#: a listing deeper or larger than this is not a dataset folder
MAX_DEPTH = 6
MAX_ENTRIES = 20000


@dataclasses.dataclass(frozen=True)
class Listing:
    """A folder tree: its base URL and every file's relative path and size (None: unknown)."""

    base: str
    files: dict[str, int | None]

    def url(self, rel: str) -> str:
        return join_url(self.base, rel)


def join_url(base: str, rel: str) -> str:
    """``base`` + ``rel`` (each part percent-encoded for HTTP, plain for a local folder)."""
    if _local_root(base) is not None:
        return f"{base.rstrip('/')}/{rel}"
    return f"{base.rstrip('/')}/{quote(rel)}"


def _local_root(url: str, base: Path | None = None) -> Path | None:
    """The folder a ``file:`` URL or plain path names; None for http(s)."""
    scheme = urlparse(url).scheme
    if scheme in ("http", "https"):
        return None
    if url.startswith("file:"):
        return local_file_url_path(url, base)
    if scheme and len(scheme) > 1:
        raise DownloadError(f"{url}: unsupported URL scheme {scheme!r} for a folder source")
    return Path(url)


def _http_fs(timeout: float) -> Any:
    import aiohttp
    import fsspec

    return fsspec.filesystem(
        "http",
        skip_instance_cache=True,
        client_kwargs={"timeout": aiohttp.ClientTimeout(total=timeout)},
    )


def _checked_rel(base: str, name: str) -> str | None:
    """The relative path of a listed link, or None for one that is not inside ``base``
    (another host, the parent, a query or fragment link, an escape): those are skipped."""
    prefix = base.rstrip("/") + "/"
    if not name.startswith(prefix):
        return None
    rel = unquote(name[len(prefix) :]).rstrip("/")
    if not rel or "?" in rel or "#" in rel:
        return None
    try:
        check_member_name(Path(base), rel, "listed file")
    except ArchiveError as exc:
        log.warning("%s: skipped: %s", base, exc)
        return None
    if "\\" in rel or any(ord(c) < 32 for c in rel):
        log.warning("%s: skipped a listed name with control characters: %r", base, rel)
        return None
    return rel


def list_folder(url: str, *, base: Path | None = None, timeout: float = 30.0) -> Listing:
    """Every file under the folder ``url`` (http(s) index pages, ``file:`` or a path).

    Raises :class:`DownloadError` naming the URL when it cannot be listed.
    """
    root = _local_root(url, base)
    if root is not None:
        return _list_local(url, root)
    fs = _http_fs(timeout)
    top = url.rstrip("/") + "/"
    files: dict[str, int | None] = {}
    folders = [("", 0)]
    while folders:
        rel_dir, depth = folders.pop()
        here = top + quote(rel_dir + "/" if rel_dir else "")
        try:
            entries = fs.ls(here, detail=True)
        except FileNotFoundError as exc:
            raise DownloadError(f"{here}: not found (HTTP 404)") from exc
        except Exception as exc:  # aiohttp's connection, DNS, time-out, HTTP errors
            raise DownloadError(f"{here}: cannot list ({type(exc).__name__}: {exc})") from exc
        for entry in entries:
            rel = _checked_rel(top, entry["name"])
            if rel is None or (rel_dir and not rel.startswith(rel_dir + "/")):
                continue
            if entry["type"] == "directory":
                if depth + 1 < MAX_DEPTH:
                    folders.append((rel, depth + 1))
            else:
                files[rel] = entry.get("size")
            if len(files) > MAX_ENTRIES:
                raise DownloadError(f"{url}: more than {MAX_ENTRIES} files listed; not a dataset")
    for rel, size in files.items():
        if size is None:
            try:
                files[rel] = fs.info(top + quote(rel)).get("size")
            except Exception as exc:  # a size is a nicety: the download verifies what it gets
                log.warning("%s: no size (%s)", top + rel, exc)
    return Listing(url, dict(sorted(files.items())))


def _list_local(url: str, root: Path) -> Listing:
    if not root.is_dir():
        raise DownloadError(f"{url}: no such folder {root}")
    top = root.resolve()
    files: dict[str, int | None] = {}
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.name.endswith(".part"):
            continue
        real = path.resolve()
        if top not in real.parents:  # a link out of the folder
            log.warning("%s: skipped %s (links outside the folder)", url, path)
            continue
        files[path.relative_to(root).as_posix()] = path.stat().st_size
    return Listing(url, files)


def list_first(urls: Sequence[str], *, base: Path | None = None, timeout: float = 30.0) -> Listing:
    """The listing of the first of ``urls`` that answers (each that does not is logged).

    Raises :class:`DownloadError` naming every URL and why when none answers.
    """
    failures: list[str] = []
    for url in urls:
        try:
            return list_folder(url, base=base, timeout=timeout)
        except DownloadError as exc:
            log.warning("%s", exc)
            failures.append(str(exc))
    raise DownloadError("no base URL could be listed:\n  " + "\n  ".join(failures))


def match_files(files: Iterable[str], pattern: str) -> list[str]:
    """The relative paths ``pattern`` (a glob; ``**`` crosses folders) matches."""
    regex = glob_regex(pattern)
    return sorted(f for f in files if regex.match(f))


def describe_listing(listing: Listing, limit: int = 12) -> str:
    """A short account of what a listing holds (for errors)."""
    names = list(listing.files)
    shown = ", ".join(names[:limit]) + (f", ... ({len(names)} files)" if len(names) > limit else "")
    return shown or "no files"


@dataclasses.dataclass(frozen=True)
class FetchedFile:
    """One file of a folder source, fetched and verified."""

    rel: str
    sha256: str
    origin: str  # the URL (or manual file) it came from


def dataset_files(
    listing: Listing, globs: Mapping[str, str], required: Iterable[str]
) -> dict[str, list[str]]:
    """What each of a dataset's globs (role -> pattern) matches in ``listing``; a ``required``
    role that matches nothing raises :class:`DownloadError` naming the URL, the glob and what
    the listing holds."""
    found = {role: match_files(listing.files, pattern) for role, pattern in globs.items()}
    for role in required:
        if not found[role]:
            raise DownloadError(
                f"{listing.base}: {role} glob {globs[role]!r} matches no listed file. The "
                f"listing holds: {describe_listing(listing)}. Fix the glob in the config "
                f"(`fmdenoise inspect-source {listing.base} --config CONFIG` shows the tree)"
            )
    return found


def fetch_dataset_files(
    urls: Sequence[str],
    globs: Mapping[str, str],
    required: Iterable[str],
    dest: str | os.PathLike[str],
    cache: str | os.PathLike[str],
    *,
    checksums: Mapping[str, str] | None = None,
    manual_dir: str | os.PathLike[str] | None = None,
    base: Path | None = None,
    timeout: float = 30.0,
    retries: int = 4,
    backoff: float = 1.0,
    progress: bool = True,
    sleep: Callable[[float], None] | None = None,
) -> list[FetchedFile]:
    """Fetch the files a dataset's globs match under the first listable of ``urls`` into
    ``cache`` (kept between runs: resumable, shared by datasets) and link them into ``dest``
    (written atomically), keeping their relative paths.

    Each file comes from the first base URL that serves it (a mirror when the first fails);
    ``checksums`` pins sha256 per relative path; a file at ``manual_dir/<rel>`` is used
    instead of the network. When no URL can be listed, the files already in ``manual_dir``
    are the listing (so a fully manual copy works offline).
    """
    checksums = checksums or {}
    manual = Path(manual_dir) if manual_dir else None
    try:
        listing = list_first(urls, base=base, timeout=timeout)
        bases = [listing.base] + [u for u in urls if u != listing.base]
    except DownloadError as exc:
        if manual is None or not manual.is_dir():
            raise DownloadError(
                f"{exc}\nDownload the dataset's files by hand from one of these URLs and put "
                "them, at their paths under it, in the download's manual_path folder"
                + (f" ({manual})" if manual else " (set manual_path in the config)")
            ) from exc
        log.warning("no URL answered; using the files under manual_path %s", manual)
        listing, bases = _list_local(str(manual), manual), []
    found = dataset_files(listing, globs, required)
    wanted = sorted({rel for rels in found.values() for rel in rels})
    cache = Path(cache)
    fetched = []
    for rel in wanted:
        fetched.append(
            _fetch_one(
                rel,
                listing,
                bases,
                cache / rel,
                checksums.get(rel),
                manual / rel if manual else None,
                base=base,
                fetch_kwargs=dict(
                    timeout=timeout,
                    retries=retries,
                    backoff=backoff,
                    progress=progress,
                    **({"sleep": sleep} if sleep else {}),
                ),
            )
        )
    with atomic_dir(dest) as tmp:
        for item in fetched:
            _link(cache / item.rel, tmp / item.rel)
    return fetched


def _fetch_one(
    rel: str,
    listing: Listing,
    bases: Sequence[str],
    target: Path,
    sha256: str | None,
    manual: Path | None,
    *,
    base: Path | None,
    fetch_kwargs: dict[str, Any],
) -> FetchedFile:
    size = listing.files.get(rel)
    if target.is_file() and (size is None or target.stat().st_size == size):
        # fetched by an earlier run (a cache file only appears complete and verified)
        digest = sha256_file(target)
        if sha256 is None or digest == sha256:
            log.info("%s: already fetched (%s, sha256 %s)", rel, target, digest)
            return FetchedFile(rel, digest, f"cache {target}")
    if manual is not None and manual.is_file():
        spec = DownloadSpec(url=str(manual), sha256=sha256, manual_path=str(manual))
        digest = fetch(spec, target, base=base, **fetch_kwargs)
        log.info("%s: from manual_path %s (sha256 %s)", rel, manual, digest)
        return FetchedFile(rel, digest, str(manual))
    failures = []
    for root in bases:
        url = join_url(root, rel)
        local = _local_root(root, base)
        if local is not None:
            url = f"file://{(local / rel).resolve()}"
        spec = DownloadSpec(
            url=url,
            sha256=sha256,
            size=size if root == listing.base else None,
            manual_path=str(manual) if manual else None,  # named in its errors
        )
        try:
            digest = fetch(spec, target, base=base, **fetch_kwargs)
        except DownloadError as exc:
            log.warning("%s: %s", rel, exc)
            failures.append(f"{join_url(root, rel)}: {exc}")
            continue
        log.info("%s: from %s (%d bytes, sha256 %s)", rel, url, target.stat().st_size, digest)
        return FetchedFile(rel, digest, url)
    raise DownloadError(
        f"{rel}: no base URL served it:\n  "
        + "\n  ".join(failures)
        + f"\nDownload it by hand and put it at {manual or '<manual_path>/' + rel}"
        + ("" if manual else " (set manual_path in the config)")
    )


def _link(src: Path, dst: Path) -> None:
    """Hard link ``src`` at ``dst`` (a copy where links are not possible)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def open_file(listing: Listing, rel: str, *, timeout: float = 30.0) -> IO[bytes]:
    """A seekable binary file of ``rel`` in ``listing``: a local file, or HTTP byte-range
    reads of the remote one (a TIFF header is read without downloading its pixels)."""
    root = _local_root(listing.base)
    if root is not None:
        return open(root / rel, "rb")
    return _http_fs(timeout).open(
        listing.url(rel), "rb", block_size=1 << 16, cache_type="readahead"
    )


def sha256sums(fetched: Iterable[FetchedFile]) -> str:
    """``sha256sum``-style lines (digest, two spaces, path under the folder)."""
    return "".join(f"{item.sha256}  {item.rel}\n" for item in fetched)
