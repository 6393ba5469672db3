"""Checkpoint loading and saving.

Understood containers (all loaded to CPU with ``torch.load(weights_only=True)``, so a pickle
that would run code is refused):

- ``kair``: DRUNet's plain state dict (``drunet_gray.pth``);
- ``restormer``: ``{'params': state_dict}`` (``gaussian_gray_denoising_*.pth``);
- ``kbnet``: ``{'net': state_dict}`` with DataParallel ``module.`` prefixes (``gau_gray_*.pth``);
- ``fmdenoise``: the project's own ``{'format': 'fmdenoise', 'arch', 'kwargs', 'state_dict'}``.

Weights always load with ``strict=True``; a mismatch is one :class:`CheckpointError` naming the
file and the missing, unexpected and wrongly shaped keys.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fmdenoise.errors import CheckpointError
from fmdenoise.io import atomic_path
from fmdenoise.models import build

FORMATS = ("kair", "restormer", "kbnet", "fmdenoise")


def read_checkpoint(path: str | Path) -> Any:
    """``torch.load`` a file safely (CPU, ``weights_only=True``) with clear errors."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: checkpoint file not found")
    with p.open("rb") as fh:
        head = fh.read(2)
    # torch.save writes a zip archive ("PK"); the legacy format starts with a pickle opcode
    if head != b"PK" and head[:1] != b"\x80":
        raise CheckpointError(f"{p}: not a PyTorch checkpoint (neither a zip nor a pickle file)")
    try:
        return torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{p}: refused: the file holds Python objects other than weights, and loading it "
            f"could execute code ({str(exc).splitlines()[0]})"
        ) from exc
    except Exception as exc:
        raise CheckpointError(
            f"{p}: not a readable torch checkpoint (truncated or corrupt?): {exc}"
        ) from exc


def extract_state_dict(obj: Any, fmt: str, source: str | Path) -> dict[str, torch.Tensor]:
    """The state dict inside a loaded container of format ``fmt``."""
    if fmt not in FORMATS:
        raise CheckpointError(f"{source}: unknown checkpoint format {fmt!r} (known: {FORMATS})")
    key = {"restormer": "params", "kbnet": "net", "fmdenoise": "state_dict"}.get(fmt)
    if key is not None:
        if not isinstance(obj, Mapping) or key not in obj:
            found = list(obj)[:5] if isinstance(obj, Mapping) else type(obj).__name__
            raise CheckpointError(
                f"{source}: {fmt} checkpoint must hold key {key!r}; found {found}"
            )
        obj = obj[key]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{source}: does not hold a state dict of tensors")
    return {(k[len("module.") :] if k.startswith("module.") else k): v for k, v in obj.items()}


def load_state_dict_strict(
    model: nn.Module, state: Mapping[str, torch.Tensor], source: str | Path
) -> None:
    """``load_state_dict(strict=True)`` with one readable error listing every problem."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [
        f"{k} {tuple(state[k].shape)} != {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(state))
        if state[k].shape != own[k].shape
    ]
    if missing or unexpected or shapes:

        def show(items: list[str]) -> str:
            return ", ".join(items[:5]) + (f" (+{len(items) - 5} more)" if len(items) > 5 else "")

        parts = [
            f"{name} [{show(items)}]"
            for name, items in (
                ("missing keys", missing),
                ("unexpected keys", unexpected),
                ("shape mismatches", shapes),
            )
            if items
        ]
        raise CheckpointError(f"{source}: does not fit {type(model).__name__}: " + "; ".join(parts))
    model.load_state_dict(state, strict=True)


def load_model(
    path: str | Path,
    arch: str | None = None,
    kwargs: Mapping[str, Any] | None = None,
    fmt: str = "fmdenoise",
) -> tuple[nn.Module, dict[str, Any]]:
    """Build the network and load a checkpoint into it; returns ``(model, meta)``.

    For ``fmdenoise`` files the architecture comes from the file; for published formats it is
    ``arch``/``kwargs``.
    """
    obj = read_checkpoint(path)
    meta: dict[str, Any] = {}
    if isinstance(obj, Mapping) and obj.get("format") == DROPPED_FORMAT:
        raise CheckpointError(
            f"{path}: the weights of this run were dropped after selection chose "
            f"{obj.get('selected')} ({obj.get('reason')}); to use this run, delete the file "
            "and rerun its training (snakemake --forcerun <this run>/model.pt)"
        )
    if fmt == "fmdenoise":
        if not isinstance(obj, Mapping) or obj.get("format") != "fmdenoise":
            raise CheckpointError(f"{path}: not an fmdenoise checkpoint (no 'format': 'fmdenoise')")
        file_arch = obj["arch"]
        if arch is not None and arch != file_arch:
            raise CheckpointError(f"{path}: holds a {file_arch} model, expected {arch}")
        arch, kwargs = file_arch, obj.get("kwargs", {})
        meta = {k: v for k, v in obj.items() if k != "state_dict"}
    if arch is None:
        raise CheckpointError(f"{path}: the architecture must be given for format {fmt!r}")
    model = build(arch, **dict(kwargs or {}))
    load_state_dict_strict(model, extract_state_dict(obj, fmt, path), path)
    return model, {"arch": arch, "kwargs": dict(kwargs or {}), **meta}


#: the ``format`` of a ``model.pt`` whose weights were dropped after selection (a tombstone)
DROPPED_FORMAT = "fmdenoise-dropped-weights"
#: a note is a few hundred bytes; a file larger than this holds weights and is not read to check
NOTE_MAX_BYTES = 64 * 1024


def replace_with_note(path: str | Path, fmt: str, **fields: Any) -> int:
    """Replace the torch file at ``path`` (weights, a training state) by a small note
    ``{"format": fmt, **fields}`` saying why it is gone (atomically; the file stays, with its
    modification time, so Snakemake still sees the job that wrote it as finished and the jobs
    that read it as up to date). Returns the bytes freed: 0 if it is such a note already."""
    path = Path(path)
    before = path.stat()
    if before.st_size <= NOTE_MAX_BYTES:
        obj = read_checkpoint(path)
        if isinstance(obj, Mapping) and obj.get("format") == fmt:
            return 0
    with atomic_path(path) as tmp:
        torch.save({"format": fmt, **fields}, tmp)
        os.utime(tmp, ns=(before.st_atime_ns, before.st_mtime_ns))
    return before.st_size - path.stat().st_size


def save_model(
    path: str | Path, model: nn.Module, arch: str, kwargs: Mapping[str, Any], **meta: Any
) -> None:
    """Save ``model`` in the project format (atomically); ``meta`` must be plain data."""
    payload = {
        "format": "fmdenoise",
        "arch": arch,
        "kwargs": dict(kwargs),
        "state_dict": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
        **meta,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def convert_published(
    src: str | Path, dest: str | Path, arch: str, kwargs: Mapping[str, Any], fmt: str, **meta: Any
) -> None:
    """Load a published checkpoint strictly and store it as ``pretrained/{model}.pt``."""
    model, _ = load_model(src, arch, kwargs, fmt)
    save_model(dest, model, arch, kwargs, source=str(src), source_format=fmt, **meta)
