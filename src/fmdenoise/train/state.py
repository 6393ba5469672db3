"""The resumable state of one training run and its ``last.pt`` file.

:class:`RunState` is everything the loop carries from step to step besides the network,
optimiser and scheduler: the step, the best validation so far and its weights, the curve,
elapsed time, the patience count and the running train loss. ``last.pt`` holds all of it plus
the model, optimiser, scheduler and torch RNG state, under a signature of the configuration it
belongs to, so that a run resumes only from its own file. It is written atomically.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
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


def save_last(path: Path, signature: str, parts: Trainables, state: RunState) -> None:
    """Write ``last.pt`` atomically."""
    payload = {
        "signature": signature,
        "model": parts.model.state_dict(),
        "optimizer": parts.optimizer.state_dict(),
        "scheduler": parts.scheduler.state_dict(),
        "rng": torch.get_rng_state(),
        **state.saved(),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def publish_state(last: Path, dest: Path) -> None:
    """Make ``dest`` hold ``last``'s current content: a hard link where the file system allows
    (``save_last`` replaces ``last`` by rename, so ``dest`` keeps this version), else a copy;
    atomic either way."""
    with atomic_path(dest) as tmp:
        try:
            os.link(last, tmp)
        except OSError:
            shutil.copyfile(last, tmp)
