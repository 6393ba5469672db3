"""Run-time device selection: CUDA when present (bf16 autocast, cuDNN benchmark, TF32),
otherwise CPU in float32; channels_last on both. One code path for both."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TypeVar

import torch
from torch import nn

M = TypeVar("M", bound=nn.Module)


def resolve(preference: str = "auto") -> torch.device:
    """``auto`` picks CUDA if available; ``cuda`` without a GPU is an error."""
    if preference == "auto":
        preference = "cuda" if torch.cuda.is_available() else "cpu"
    if preference == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda requested but no CUDA device is available")
    dev = torch.device(preference)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return dev


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA; nothing on CPU (float32 keeps CPU results exact)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def memory_format(device: torch.device, channels_last: bool | None = None) -> torch.memory_format:
    """channels_last unless told otherwise: it is faster for all three architectures on CUDA
    and, measured by benchmarks/models.py, on CPU too (Restormer 1.7x, KBNet 1.4x)."""
    use = True if channels_last is None else channels_last
    return torch.channels_last if use else torch.contiguous_format


def prepare(model: M, device: torch.device, channels_last: bool | None = None) -> M:
    """Move ``model`` to ``device`` in the chosen memory format (the same module, moved)."""
    # Module.to takes memory_format at run time; torch's stubs do not list it
    fmt = memory_format(device, channels_last)
    return model.to(device=device, memory_format=fmt)  # type: ignore[call-overload]


@contextlib.contextmanager
def threads(n: int | None) -> Iterator[None]:
    """Temporarily set torch's intra-op thread count (None: leave as is)."""
    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)
