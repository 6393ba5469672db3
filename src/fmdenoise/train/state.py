"""The resumable state of one training run and its ``last.pt`` file.

:class:`RunState` is everything the loop carries from step to step besides the network,
optimiser and scheduler: the step, the best validation so far and its weights, the curve,
elapsed time, the patience count and the running train loss. ``last.pt`` holds all of it plus
the model, optimiser, scheduler and torch RNG state, under a signature of the configuration it
belongs to, so that a run resumes only from its own file. It is written atomically.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
import shutil
import threading
from pathlib import Path
from typing import Any

import torch

from fmdenoise.errors import FmdenoiseError
from fmdenoise.io import atomic_path
from fmdenoise.train.search import DROPPED_STATE

log = logging.getLogger(__name__)


@dataclasses.dataclass
class RunState:
    """The loop's state; every field but ``resumed_from`` is saved in ``last.pt``."""

    step: int = 0
    best: dict[str, float] | None = None
    best_step: int = 0
    best_state: dict[str, torch.Tensor] | None = None
    curve: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    elapsed: float = 0.0
    bad_vals: int = 0
    loss_sum: float = 0.0
    loss_n: int = 0
    resumed_from: int | None = None

    def saved(self) -> dict[str, Any]:
        """The fields that go into ``last.pt``."""
        # not dataclasses.asdict: it would deep-copy every weight tensor of best_state
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name != "resumed_from"
        }


@dataclasses.dataclass
class Trainables:
    """The objects whose state ``last.pt`` holds besides :class:`RunState`."""

    model: torch.nn.Module
    optimizer: Any
    scheduler: Any


def load_last(
    path: Path, signature: str, parts: Trainables, max_step: int | None = None
) -> RunState | None:
    """Restore ``parts`` from ``path`` and return the saved state, or None when there is no
    file, it belongs to another configuration, or it is past ``max_step`` (then nothing is
    touched). Runs with one signature follow one trajectory, so a state of it at any step up
    to ``max_step`` is a valid point to continue from."""
    if not path.exists():
        return None
    saved = torch.load(path, map_location="cpu", weights_only=True)
    if saved.get("format") == DROPPED_STATE:
        reason = saved.get("reason", "not promoted")
        raise FmdenoiseError(
            f"{path}: this rung state was dropped ({reason}); to train from it again, delete "
            "the file and rerun the rung that made it"
        )
    if saved.get("signature") != signature:
        log.warning("%s belongs to another configuration; starting afresh", path)
        return None
    if max_step is not None and saved["step"] > max_step:
        log.info("%s is at step %d, past this job's budget %d", path, saved["step"], max_step)
        return None
    parts.model.load_state_dict(saved["model"])
    parts.optimizer.load_state_dict(saved["optimizer"])
    parts.scheduler.load_state_dict(saved["scheduler"])
    torch.set_rng_state(saved["rng"])
    fields = {f.name for f in dataclasses.fields(RunState)} - {"resumed_from"}
    state = RunState(**{k: saved[k] for k in fields}, resumed_from=saved["step"])
    log.info("resuming from %s at step %d", path, saved["step"])
    return state


def _payload(signature: str, parts: Trainables, state: RunState) -> dict[str, Any]:
    return {
        "signature": signature,
        "model": parts.model.state_dict(),
        "optimizer": parts.optimizer.state_dict(),
        "scheduler": parts.scheduler.state_dict(),
        "rng": torch.get_rng_state(),
        **state.saved(),
    }


def _to_host(value: Any) -> Any:
    """A copy of ``value`` whose tensors are on the host and no longer shared with training
    (the loop keeps changing its weights and moments while the copy is written)."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {k: _to_host(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_to_host(v) for v in value)
    return copy.deepcopy(value)


def _write(path: Path, payload: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def save_last(path: Path, signature: str, parts: Trainables, state: RunState) -> None:
    """Write ``last.pt`` atomically (now; :class:`CheckpointWriter` writes in the background)."""
    _write(path, _to_host(_payload(signature, parts, state)))


class CheckpointWriter:
    """Writes ``last.pt`` from a host copy of the state in a background thread, one write at a
    time: training goes on while the file (16 bytes per parameter: 2.3 GB for KBNet) reaches
    the disk. ``save(..., wait=True)``, and leaving the ``with`` block, wait for the write,
    so the file is complete before a rung publishes it, the run deletes it, or the job ends on
    a signal. A failed write is raised at the next save or on leaving."""

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def __enter__(self) -> CheckpointWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.wait()

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def save(
        self, path: Path, signature: str, parts: Trainables, state: RunState, wait: bool = False
    ) -> None:
        self.wait()  # one file at a time, and the previous one's error first
        payload = _to_host(_payload(signature, parts, state))  # the only part the device waits for

        def write() -> None:
            try:
                _write(path, payload)
            except BaseException as exc:  # re-raised in the training thread
                self._error = exc

        self._thread = threading.Thread(target=write, name="fmdenoise-checkpoint", daemon=True)
        self._thread.start()
        if wait:
            self.wait()


def publish_state(last: Path, dest: Path) -> None:
    """Make ``dest`` hold ``last``'s current content: a hard link where the file system allows
    (``save_last`` replaces ``last`` by rename, so ``dest`` keeps this version), else a copy;
    atomic either way."""
    with atomic_path(dest) as tmp:
        try:
            os.link(last, tmp)
        except OSError:
            shutil.copyfile(last, tmp)
