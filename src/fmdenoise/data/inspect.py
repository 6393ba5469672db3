"""What a source holds, and what each dataset's globs find there (``inspect-source``).

The first command a user runs against the real site: ``fmdenoise inspect-source <URL or DIR>
--config config.yaml``. The source is a local folder (an extracted archive, a copy of the
site) or a remote folder's URL (listed from its index pages, :mod:`fmdenoise.data.remote`).
The report lists the tree with sizes; pages, image shape and dtype of every TIFF read from its
header (remote files by HTTP byte ranges: no full download); which files each dataset's globs
match (train/test, noisy/ground truth, provided method outputs), whether the sides pair
(same number of images, same image shape) and whether the test side comes from the source or
from ``split.test_fraction``; and the files no glob claims.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import tifffile

from fmdenoise.data.ingest import plane_keys, source_globs
from fmdenoise.data.remote import Listing, list_folder, match_files, open_file
from fmdenoise.errors import DownloadError, FmdenoiseError

TIFF_SUFFIXES = (".tif", ".tiff")
STACK_NAME = re.compile(r"(?P<dataset>.+)-(?P<role>lowsnr|highsnr)\.tiff?$")


@dataclasses.dataclass(frozen=True)
class TiffInfo:
    """One TIFF file: its path relative to the source, pages, image shape, dtype, bytes."""

    path: str
    pages: int
    shape: tuple[int, ...]
    dtype: str = ""
    size: int | None = None
    error: str | None = None


@dataclasses.dataclass
class GlobFinding:
    """What one glob of one dataset matched."""

    dataset: str
    role: str  # train.low, train.gt, test.low, test.gt, test.provided.<name>
    pattern: str
    files: list[str]
    images: int | None = None
    error: str | None = None
    note: str | None = None


def tiff_info(listing: Listing, rel: str) -> TiffInfo:
    """Pages, 2D shape and dtype of a TIFF from its header, without reading its pixels."""
    size = listing.files.get(rel)
    try:
        with open_file(listing, rel) as fh, tifffile.TiffFile(fh) as tif:
            series = tif.series[0]
            shape = tuple(int(n) for n in series.shape)
            dtype = str(series.dtype)
    except Exception as exc:  # any unreadable file is reported, not fatal
        return TiffInfo(rel, 0, (), size=size, error=f"{type(exc).__name__}: {exc}")
    pages = 1 if len(shape) == 2 else int(shape[0])
    return TiffInfo(rel, pages, shape[-2:], dtype, size)


def list_source(source: str | Path) -> Listing:
    """The tree of a local folder or a remote folder's URL."""
    text = str(source)
    if "://" not in text and not text.startswith("file:") and not Path(text).is_dir():
        raise FmdenoiseError(f"{source}: not a folder or a URL (extract an archive first)")
    try:
        return list_folder(text)
    except DownloadError as exc:
        raise FmdenoiseError(f"inspect-source: {exc}") from exc


def _tiffs(listing: Listing) -> list[TiffInfo]:
    rels = [r for r in listing.files if PurePosixPath(r).suffix.lower() in TIFF_SUFFIXES]
    return [tiff_info(listing, rel) for rel in rels]


def inspect_dataset(
    files: Mapping[str, TiffInfo],
    name: str,
    dataset_cfg: Mapping[str, Any],
    where: str,
    test_fraction: float | None = None,
) -> list[GlobFinding]:
    """What each glob of dataset ``name`` finds among ``files`` and whether the sides pair."""
    findings: list[GlobFinding] = []
    planes: dict[str, dict[str, tuple[str, int]]] = {}
    globs = source_globs(name, dataset_cfg)
    test_missing = not match_files(files, globs["test.low"]) and not match_files(
        files, globs["test.gt"]
    )
    for role, pattern in globs.items():
        matched = match_files(files, pattern)
        finding = GlobFinding(name, role, pattern, matched)
        if not matched and role in ("test.low", "test.gt") and test_missing and test_fraction:
            finding.note = (
                f"no test files: the last {test_fraction:g} of the train pairs are test "
                "(split.test_fraction)"
            )
            findings.append(finding)
            continue
        try:
            unreadable = [f for f in matched if files[f].error]
            if unreadable:
                raise FmdenoiseError(f"{unreadable[0]}: {files[unreadable[0]].error}")
            planes[role] = plane_keys(matched, pattern, lambda f: files[f].pages, where)
            finding.images = len(planes[role])
        except FmdenoiseError as exc:
            finding.error = str(exc)
        findings.append(finding)
    for finding in findings:
        side = finding.role.split(".")[0]
        low = planes.get(f"{side}.low")
        if finding.error or finding.role.endswith(".low") or low is None:
            continue
        if finding.role not in planes:
            continue
        mine = planes[finding.role]
        if set(mine) != set(low):
            finding.error = (
                f"{len(mine)} image(s) against {len(low)} noisy ones: the sides do not pair"
            )
            continue
        shapes = {files[f].shape for f, _ in mine.values()} | {
            files[f].shape for f, _ in low.values()
        }
        if len(shapes) > 1:
            finding.error = f"image shapes differ from the noisy side's: {sorted(shapes)}"
    return findings


def inspect_source(
    source: str | Path,
    config: Mapping[str, Any] | None = None,
    datasets: Iterable[str] | None = None,
) -> dict[str, Any]:
    """Everything :func:`format_report` prints, as data: ``base`` (the source), ``files``
    (every TIFF), ``other`` (the other files with sizes), ``findings`` (per dataset and glob,
    when a config is given), ``unclaimed`` (TIFFs no glob matched) and ``suggested`` (dataset
    names guessed from ``<name>-lowsnr.tif`` stacks)."""
    listing = list_source(source)
    tiffs = _tiffs(listing)
    by_path = {t.path: t for t in tiffs}
    suggested = sorted(
        {m["dataset"] for t in tiffs if (m := STACK_NAME.match(PurePosixPath(t.path).name))}
    )
    findings: list[GlobFinding] = []
    if config is not None:
        names = list(datasets) if datasets else list(config["datasets"])
        unknown = sorted(set(names) - set(config["datasets"]))
        if unknown:
            raise FmdenoiseError(f"--dataset {unknown[0]!r}: not a dataset of the config")
        fraction = config.get("split", {}).get("test_fraction")
        for name in names:
            findings += inspect_dataset(
                by_path, name, config["datasets"][name], str(source), fraction
            )
    claimed = {f for finding in findings for f in finding.files}
    unclaimed = [t.path for t in tiffs if t.path not in claimed] if config is not None else []
    other = {rel: size for rel, size in listing.files.items() if rel not in by_path}
    return {
        "base": str(source),
        "files": tiffs,
        "other": other,
        "findings": findings,
        "unclaimed": unclaimed,
        "suggested": suggested,
    }


def _size(nbytes: int | None) -> str:
    return "size unknown" if nbytes is None else f"{nbytes / 1e6:,.1f} MB"


def format_report(report: Mapping[str, Any]) -> str:
    """The human-readable report of :func:`inspect_source`."""
    lines = [f"{report['base']}: {len(report['files'])} TIFF file(s):"]
    for f in report["files"]:
        what = f.error or f"{f.pages} page(s) of {'x'.join(map(str, f.shape))} {f.dtype}"
        lines.append(f"  {f.path}: {what} ({_size(f.size)})")
    if report.get("other"):
        lines.append(f"{len(report['other'])} other file(s):")
        lines += [f"  {rel} ({_size(size)})" for rel, size in report["other"].items()]
    if report["suggested"]:
        lines.append(
            "datasets named by <name>-lowsnr/-highsnr stacks: " + ", ".join(report["suggested"])
        )
    by_dataset: dict[str, list[GlobFinding]] = {}
    for finding in report["findings"]:
        by_dataset.setdefault(finding.dataset, []).append(finding)
    empty = []
    for name, findings in by_dataset.items():
        if not any(f.files for f in findings):
            empty.append(name)
            continue
        ok = all(f.error is None for f in findings)
        lines.append(f"dataset {name}: {'OK' if ok else 'PROBLEM'}")
        for f in findings:
            state = f.error or f.note or f"{f.images} image(s) from {len(f.files)} file(s)"
            lines.append(f"  {f.role:<22} {f.pattern!r}: {state}")
    if empty:
        lines.append("datasets whose globs match nothing here: " + ", ".join(empty))
    if report["unclaimed"]:
        lines.append(
            "files no glob claims (provided method outputs? add them under test.provided): "
            + ", ".join(report["unclaimed"])
        )
    return "\n".join(lines)
