"""The bytes a study downloads, from the folder source's listing when the site answers.

Before the data is here the plan prices downloads and disk from each dataset's ``expected``
size. When a dataset's source is a folder (``kind: folder``: GigaDB's listing), the listing
gives each file's size: :func:`listed_bytes` sums what each dataset's globs match there, so
the plan's download and disk figures are the site's, and says where it could not.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fmdenoise.config import folder_urls
from fmdenoise.data.ingest import REQUIRED_GLOBS, source_globs
from fmdenoise.data.remote import dataset_files, list_first
from fmdenoise.errors import DownloadError


def listed_bytes(
    config: Mapping[str, Any], timeout: float = 10.0
) -> tuple[dict[str, float], list[str]]:
    """``(bytes per dataset, notes)``: what each folder-source dataset's globs match in its
    source's listing (datasets whose files are not all sized are left out), and one note per
    source saying where the sizes came from or why the expected ones stay."""
    sizes: dict[str, float] = {}
    notes: list[str] = []
    by_source: dict[str, list[str]] = {}
    for name, ds in config["datasets"].items():
        if config["downloads"][ds["source"]]["kind"] == "folder":
            by_source.setdefault(ds["source"], []).append(name)
    for key, names in by_source.items():
        try:
            listing = list_first(folder_urls(config, key), timeout=timeout)
        except DownloadError as exc:
            first = str(exc).splitlines()[1].strip() if "\n" in str(exc) else str(exc)
            notes.append(f"{key}: sizes from datasets.*.expected (listing failed: {first})")
            continue
        unsized = []
        for name in names:
            try:
                found = dataset_files(
                    listing, source_globs(name, config["datasets"][name]), REQUIRED_GLOBS
                )
            except DownloadError:
                unsized.append(name)
                continue
            rels = {rel for rels in found.values() for rel in rels}
            listed = [listing.files[rel] for rel in rels]
            if any(size is None for size in listed):
                unsized.append(name)
            else:
                sizes[name] = float(sum(size for size in listed if size is not None))
        notes.append(
            f"{key}: download sizes from the listing of {listing.base}"
            + (
                f" (expected sizes for {', '.join(unsized)}: not found or not sized)"
                if unsized
                else ""
            )
        )
    return sizes, notes
