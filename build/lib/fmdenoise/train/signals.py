"""Preemption: turn SIGTERM/SIGINT (what SLURM sends on preemption and time-out) into a flag
that a long loop checks between steps, so it can save its state and stop cleanly."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def stop_requested() -> Iterator[dict[str, int]]:
    """Record SIGTERM/SIGINT instead of dying, so the loop can save and stop cleanly."""
    flag: dict[str, int] = {}

    def handler(signum: int, _frame: Any) -> None:
        flag["signal"] = signum

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield flag
    finally:
        for s, h in old.items():
            signal.signal(s, h)
