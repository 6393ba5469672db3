"""What a source folder holds, and what each dataset's globs find there (``inspect-source``).

The real archives' layout is a guess in ``config.yaml`` until someone has one in hand. This
module answers the question a user asks when ingest fails: which TIFF files are there (pages,
image shape), which of them each dataset's globs match (train/test, noisy/ground truth,
provided method outputs), whether they pair, and which files no glob claims.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import tifffile

from fmdenoise.data.ingest import dataset_layout, match_planes, pair_planes
from fmdenoise.errors import FmdenoiseError

TIFF_SUFFIXES = (".tif", ".tiff")
STACK_NAME = re.compile(r"(?P<dataset>.+)-(?P<role>lowsnr|highsnr)\.tiff?$")


@dataclasses.dataclass(frozen=True)
class TiffInfo:
    """One TIFF file: its path relative to the source folder, pages and image shape."""

    path: str
    pages: int
    shape: tuple[int, ...]
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


def tiff_info(path: Path, base: Path) -> TiffInfo:
    """Pages and 2D shape of a TIFF without reading its pixels."""
    rel = path.relative_to(base).as_posix()
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            shape = tuple(int(n) for n in series.shape)
    except Exception as exc:  # any unreadable file is reported, not fatal
        return TiffInfo(rel, 0, (), f"{type(exc).__name__}: {exc}")
    pages = 1 if len(shape) == 2 else int(shape[0])
    return TiffInfo(rel, pages, shape[-2:])


def list_tiffs(root: Path) -> list[TiffInfo]:
    """Every TIFF under ``root`` (recursively), sorted by path."""
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in TIFF_SUFFIXES)
    return [tiff_info(p, root) for p in files]


def _globs(layout: Mapping[str, Any]) -> Iterable[tuple[str, str]]:
    for side in ("train", "test"):
        for role in ("low", "gt"):
            yield f"{side}.{role}", layout[side][role]
    for method, pattern in layout["test"].get("provided", {}).items():
        yield f"test.provided.{method}", pattern


def inspect_dataset(source: Path, name: str, dataset_cfg: Mapping[str, Any]) -> list[GlobFinding]:
    """What each glob of dataset ``name`` finds under ``source`` and whether the sides pair."""
    layout = dataset_layout(name, dataset_cfg)
    root = source / layout.get("root", ".")
    findings: list[GlobFinding] = []
    planes: dict[str, Any] = {}
    for role, pattern in _globs(layout):
        files = sorted(p for p in root.glob(pattern) if p.is_file()) if root.is_dir() else []
        finding = GlobFinding(
            name, role, pattern, [p.relative_to(source).as_posix() for p in files]
        )
        try:
            if not root.is_dir():
                raise FmdenoiseError(f"root {layout.get('root', '.')!r} not found")
            planes[role] = match_planes(root, pattern)
            finding.images = len(planes[role])
        except FmdenoiseError as exc:
            finding.error = str(exc)
        findings.append(finding)
    for finding in findings:
        if finding.error or finding.role.endswith(".low"):
            continue
        side = finding.role.split(".")[0]
        if f"{side}.low" in planes:
            try:
                pair_planes(planes[f"{side}.low"], planes[finding.role], finding.role)
            except FmdenoiseError as exc:
                finding.error = str(exc)
    return findings


def inspect_source(
    source: str | Path,
    config: Mapping[str, Any] | None = None,
    datasets: Iterable[str] | None = None,
) -> dict[str, Any]:
    """Everything :func:`format_report` prints, as data: ``files`` (every TIFF),
    ``findings`` (per dataset and glob, when a config is given), ``unclaimed`` (files no glob
    matched) and ``suggested`` (dataset names guessed from ``<name>-lowsnr.tif`` stacks)."""
    source = Path(source)
    if not source.is_dir():
        raise FmdenoiseError(f"{source}: not a folder (extract the archive first)")
    files = list_tiffs(source)
    suggested = sorted({m["dataset"] for f in files if (m := STACK_NAME.match(Path(f.path).name))})
    findings: list[GlobFinding] = []
    if config is not None:
        names = list(datasets) if datasets else list(config["datasets"])
        unknown = sorted(set(names) - set(config["datasets"]))
        if unknown:
            raise FmdenoiseError(f"--dataset {unknown[0]!r}: not a dataset of the config")
        for name in names:
            findings += inspect_dataset(source, name, config["datasets"][name])
    claimed = {f for finding in findings for f in finding.files}
    unclaimed = [f.path for f in files if f.path not in claimed] if config is not None else []
    return {"files": files, "findings": findings, "unclaimed": unclaimed, "suggested": suggested}


def format_report(report: Mapping[str, Any]) -> str:
    """The human-readable report of :func:`inspect_source`."""
    lines = [f"{len(report['files'])} TIFF file(s):"]
    for f in report["files"]:
        what = f.error or f"{f.pages} page(s) of {'x'.join(map(str, f.shape))}"
        lines.append(f"  {f.path}: {what}")
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
            state = f.error or f"{f.images} image(s) from {len(f.files)} file(s)"
            lines.append(f"  {f.role:<22} {f.pattern!r}: {state}")
    if empty:
        lines.append("datasets whose globs match nothing here: " + ", ".join(empty))
    if report["unclaimed"]:
        lines.append(
            "files no glob claims (provided method outputs? add them under test.provided): "
            + ", ".join(report["unclaimed"])
        )
    return "\n".join(lines)
