"""Fine-tuning one grid cell: a resumable, preemptible training loop.

One call of :func:`train` trains one (model, dataset, loss, lr, init, aug, seed) cell on the
memory-mapped patches and writes, in the run folder:

- ``last.pt``: everything needed to resume (:mod:`fmdenoise.train.state`), written atomically
  every ``checkpoint_every`` steps and when the process receives SIGTERM/SIGINT (what SLURM
  sends on preemption and time-out);
- ``model.pt``, ``curve.csv``, ``run.json`` at the end (:mod:`fmdenoise.train.outputs`), after
  which ``last.pt`` is removed: a finished run keeps no optimizer state.

Batches are a pure function of (seed, step): the patch indices and the dihedral transform of
every sample are drawn from a generator seeded with both. A resumed run therefore sees the same
batches as an uninterrupted one and, on CPU, ends with the same weights.

:func:`train_rung` trains a cell only up to a rung's budget of a successive-halving search
(:mod:`fmdenoise.train.search`) and publishes its state as ``rung<r>.pt``; the next rung (or
:func:`train` for the last one) continues from that file with ``start_from``, and once its
own outputs are written replaces that file by a note (the state is needed by nothing any more).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from fmdenoise import device as dev
from fmdenoise.errors import FmdenoiseError
from fmdenoise.io import write_json
from fmdenoise.settings import InferenceSettings, ModelSettings, TrainingSettings
from fmdenoise.train.batches import StepBatches
from fmdenoise.train.compile import compile_regions
from fmdenoise.train.losses import get_loss
from fmdenoise.train.outputs import write_run_outputs
from fmdenoise.train.provenance import signature
from fmdenoise.train.search import drop_continued_state, rung_summary
from fmdenoise.train.setup import Cell, make_model, make_optimizer
from fmdenoise.train.signals import stop_requested
from fmdenoise.train.state import (
    CheckpointWriter,
    RunState,
    Trainables,
    load_last,
    publish_state,
    save_last,
)
from fmdenoise.train.validation import validation_metrics

log = logging.getLogger(__name__)

#: wall minutes between checkpoints of a run besides every ``training.checkpoint_every`` steps
#: (``checkpoint_minutes`` in the config)
CHECKPOINT_MINUTES = 10.0


class PreemptedError(FmdenoiseError):
    """Training stopped on a signal after saving ``last.pt``; rerun to resume."""


class Trainer:
    """The steps of one cell's training; :func:`train` is the entry point."""

    def __init__(
        self,
        cell: Cell,
        model: ModelSettings,
        training: TrainingSettings,
        patch_dir: Path,
        out_dir: Path,
        *,
        pretrained: Path | None,
        device: str,
        threads: int | None,
        stop_at: int | None = None,
        start_from: Path | None = None,
        checkpoint_minutes: float = CHECKPOINT_MINUTES,
    ) -> None:
        self.cell, self.model_settings, self.training = cell, model, training
        self.patch_dir, self.out_dir = patch_dir, out_dir
        self.steps, self.batch_size = int(training.steps), int(training.batch_size)
        #: where this job stops: a rung's budget, or the full training budget
        self.stop_at = min(int(stop_at), self.steps) if stop_at else self.steps
        self.start_from = start_from
        #: wall minutes between checkpoints besides every checkpoint_every steps
        self.checkpoint_minutes = float(checkpoint_minutes)
        patches = (patch_dir / "patches.json").read_text()
        self.signature = signature(
            {
                "cell": dataclasses.asdict(cell),
                "model": model.as_dict(),
                "training": training.as_dict(),
                "patches": patches,
            }
        )
        #: the noise range of the training images (None if not recorded), for run.json/model.pt
        self.training_noise: dict[str, Any] | None = json.loads(patches).get("noise")
        self.device = dev.resolve(device)
        self.workers = max(0, (threads or 1) - 1) if self.device.type == "cuda" else 0
        if threads and self.device.type == "cpu":
            torch.set_num_threads(threads)
        self.wrapper = dev.prepare(make_model(cell, model, pretrained), self.device)
        if training.compile:  # in place, block by block: same module, same state_dict keys
            compiled = compile_regions(self.wrapper.net, model.arch)
            log.info("torch.compile: %d region(s) of %s, cache %s", compiled, model.arch,
                     os.environ.get("TORCHINDUCTOR_CACHE_DIR", "torch's default"))  # fmt: skip
        #: what the steps call
        self.model: torch.nn.Module = self.wrapper
        opt, sched = make_optimizer(self.wrapper, cell, training)
        self.parts = Trainables(self.wrapper, opt, sched)
        self.loss_fn = get_loss(cell.loss, training.ssim_l1_weight)
        self.state = RunState()
        #: the running train-loss sum on the device (float64, step order; see :meth:`step`)
        self.loss_acc = torch.zeros((), dtype=torch.float64, device=self.device)
        self.last = out_dir / "last.pt"

    def loader(self, preload: bool) -> DataLoader:
        """Batches from the step after the current one to the last step."""
        batches = StepBatches(
            self.patch_dir,
            self.batch_size,
            self.cell.seed,
            self.cell.aug == "rot",
            self.state.step + 1,
            self.stop_at,
            preload,
        )
        return DataLoader(
            batches,
            batch_size=None,
            shuffle=False,
            num_workers=self.workers,
            pin_memory=self.device.type == "cuda",
            prefetch_factor=4 if self.workers else None,
        )

    def step(self, low: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
        """One optimisation step; returns the loss, left on the device (no host sync: the
        running sum is read at the log, validation and checkpoint points only)."""
        low = low.to(self.device, non_blocking=True)
        low = low.contiguous(memory_format=dev.memory_format(self.device))
        gt = gt.to(self.device, non_blocking=True)
        with dev.autocast(self.device):
            pred = self.model(low)
        loss = self.loss_fn(pred.float(), gt)
        opt = self.parts.optimizer
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.training.grad_clip:
            torch.nn.utils.clip_grad_norm_(
                self.wrapper.parameters(), float(self.training.grad_clip)
            )
        opt.step()
        self.parts.scheduler.step()
        value = loss.detach()
        # float64 on the device, in step order: the same left fold as summing loss.item()s
        self.loss_acc += value.double()
        self.state.step += 1
        self.state.loss_n += 1
        return value

    def sync_loss(self) -> None:
        """Read the running loss sum into the state (one host sync)."""
        self.state.loss_sum = float(self.loss_acc.cpu())

    def validate(self, elapsed: float) -> None:
        """Validate, append a curve row, track the best weights and the patience count."""
        st = self.state
        metrics = validation_metrics(
            self.model, self.patch_dir, self.loss_fn, self.device, self.batch_size
        )
        self.sync_loss()
        train_loss = st.loss_sum / st.loss_n if st.loss_n else float("nan")
        st.curve.append(
            {
                "step": st.step,
                "seconds": round(elapsed, 3),
                "train_loss": train_loss,
                **metrics,
                "lr": self.parts.scheduler.get_last_lr()[0],
            }
        )
        st.loss_sum, st.loss_n = 0.0, 0
        self.loss_acc.zero_()
        log.info("validation at step %d: %s", st.step, metrics)
        if st.step == 0:
            return  # the starting point is recorded, not a candidate
        if st.best is None or metrics["val_psnr"] > st.best["val_psnr"]:
            # a copy on the model's device (no host round trip per improvement); written to the
            # host with the checkpoints and the outputs
            st.best_state = {k: v.detach().clone() for k, v in self.wrapper.state_dict().items()}
            st.best, st.best_step, st.bad_vals = metrics, st.step, 0
        else:
            st.bad_vals += 1

    def log_progress(self, recent: list[torch.Tensor], start_step: int, t0: float) -> None:
        """One progress line: step, mean recent loss, throughput, ETA."""
        step = self.state.step
        rate = (step - start_step) * self.batch_size / max(time.perf_counter() - t0, 1e-9)
        eta = _hms((self.stop_at - step) * self.batch_size / max(rate, 1e-9))
        log.info(
            "step %d/%d loss %.5f %.1f patches/s ETA %s",
            step,
            self.stop_at,
            float(torch.stack(recent).double().mean().cpu()),
            rate,
            eta,
        )

    def patience_spent(self) -> bool:
        """Whether early stopping has ended this run (also when resumed after it)."""
        patience = self.training.patience
        return patience is not None and self.state.bad_vals >= patience

    def resume(self) -> None:
        """Continue from ``last.pt`` (up to this job's budget), else from ``start_from`` (the
        previous rung's state), else start afresh and record the step-0 validation."""
        resumed = load_last(self.last, self.signature, self.parts, max_step=self.stop_at)
        if resumed is None and self.start_from is not None:
            resumed = load_last(self.start_from, self.signature, self.parts, self.stop_at)
            if resumed is None:
                raise FmdenoiseError(
                    f"{self.start_from}: not a state of this run's configuration at or before "
                    f"step {self.stop_at}; delete it and rerun the rung that made it"
                )
        if resumed is not None:
            self.state = resumed
        if self.state.step == 0:  # where each initialisation starts from (zero-shot if pretrained)
            self.validate(0.0)

    def fit(self, preload: bool = False) -> None:
        """Resume, then train to ``stop_at`` (or early stop), saving ``last.pt`` on the way:
        every ``checkpoint_every`` steps, every ``checkpoint_minutes`` of wall time, at the end
        and on SIGTERM/SIGINT. The file is written by a background thread from a host copy of
        the state, so the device waits only for that copy."""
        self.resume()
        st, cfg, stop_at = self.state, self.training, self.stop_at
        self.loss_acc.fill_(st.loss_sum)
        val_every, ckpt_every = int(cfg.val_every), int(cfg.checkpoint_every)
        log_every = max(1, min(val_every, self.steps // 20 or 1))
        t0, start_step = time.perf_counter(), st.step
        last_save = t0
        recent: list[torch.Tensor] = []
        if self.patience_spent():
            log.info("early-stopped at step %d before: nothing to train", st.step)
            return
        self.model.train()
        with stop_requested() as stop, CheckpointWriter() as writer:
            for low, gt in self.loader(preload):
                recent = [*recent[-log_every + 1 :], self.step(low, gt)]
                step, elapsed = st.step, st.elapsed + time.perf_counter() - t0
                if step % log_every == 0 or step == stop_at:
                    self.log_progress(recent, start_step, t0)
                if step % val_every == 0 or step == self.steps:
                    self.validate(elapsed)
                patience = self.patience_spent()
                timed = time.perf_counter() - last_save >= 60 * self.checkpoint_minutes
                if step % ckpt_every == 0 or step == stop_at or stop or patience or timed:
                    st.elapsed, t0, start_step = elapsed, time.perf_counter(), step
                    last_save = t0
                    self.sync_loss()
                    final = step == stop_at or bool(stop) or patience
                    writer.save(self.last, self.signature, self.parts, st, wait=final)
                if stop:
                    raise PreemptedError(
                        f"signal {stop['signal']} at step {step}: saved {self.last}; "
                        "rerun to resume"
                    )
                if patience:
                    log.info(
                        "early stop at step %d: no improvement in %d validations",
                        step,
                        cfg.patience,
                    )
                    break
        st.elapsed += time.perf_counter() - t0

    def run(
        self, preload: bool = False, inference: InferenceSettings | None = None
    ) -> dict[str, Any]:
        """Resume if possible, train to the budget (or early stop), write the outputs, then
        drop ``last.pt``: the run has finished for good, and its optimizer state (twice the
        weights for AdamW, plus a copy of the best weights) is what fills a disk quota
        (2.8 GB per full-size KBNet run). Until the outputs are written it stays, so a run
        killed at any point before still resumes exactly."""
        self.fit(preload)
        run = write_run_outputs(
            self.out_dir,
            cell=self.cell,
            wrapper=self.wrapper,
            state=self.state,
            model=self.model_settings,
            training=self.training,
            signature=self.signature,
            device=self.device,
            training_noise=self.training_noise,
            inference=inference,
        )
        if self.last.exists():
            size = self.last.stat().st_size
            self.last.unlink()
            log.info("finished: removed %s (%.1f MB of training state)", self.last, size / 2**20)
        if self.start_from is not None:
            drop_continued_state(self.start_from, "train")
        return run

    def run_rung(self, rung: int, state_out: Path, summary_out: Path) -> dict[str, Any]:
        """Train to this rung's budget, publish the state as ``state_out`` and write the rung's
        summary (validation so far, steps, cumulative time) to ``summary_out``."""
        self.fit()
        save_last(self.last, self.signature, self.parts, self.state)
        publish_state(self.last, state_out)
        gpus = 1 if self.device.type == "cuda" else 0
        summary = rung_summary(
            self.out_dir,
            rung,
            self.stop_at,
            self.state,
            {
                "cell": dataclasses.asdict(self.cell),
                "device_type": self.device.type,
                "gpu_hours": round(self.state.elapsed / 3600 * gpus, 6),
                "early_stopped": self.patience_spent(),
            },
        )
        write_json(summary_out, summary)
        if self.start_from is not None:
            drop_continued_state(self.start_from, f"rung {rung}")
        return summary


def train(
    cell: Cell,
    model: ModelSettings,
    training: TrainingSettings,
    patch_dir: str | Path,
    out_dir: str | Path,
    *,
    pretrained: str | Path | None = None,
    device: str = "auto",
    threads: int | None = None,
    preload: bool = False,
    start_from: str | Path | None = None,
    inference: InferenceSettings | None = None,
    checkpoint_minutes: float = CHECKPOINT_MINUTES,
) -> dict[str, Any]:
    """Train one cell (resuming from ``out_dir/last.pt`` when it matches); returns run.json.

    ``threads`` (the job's cpus): torch's intra-op threads on CPU; on CUDA, loader workers
    (threads - 1) that prefetch batches into pinned memory so the GPU never waits.
    ``preload`` reads the patches into memory instead of memory-mapping them (benchmarks).
    ``start_from``: the previous rung's state (successive halving), used when the run folder
    holds no ``last.pt`` of this run. ``inference``: how the study applies the model
    (recorded in model.pt and run.json; not part of the run's signature).
    """
    trainer = _trainer(
        cell, model, training, patch_dir, out_dir, pretrained, device, threads, None,
        start_from, checkpoint_minutes,
    )  # fmt: skip
    return trainer.run(preload, inference)


def train_rung(
    cell: Cell,
    model: ModelSettings,
    training: TrainingSettings,
    patch_dir: str | Path,
    out_dir: str | Path,
    *,
    rung: int,
    budget: int,
    state_out: str | Path,
    summary_out: str | Path,
    start_from: str | Path | None = None,
    pretrained: str | Path | None = None,
    device: str = "auto",
    threads: int | None = None,
    checkpoint_minutes: float = CHECKPOINT_MINUTES,
) -> dict[str, Any]:
    """Train one cell to a rung's step ``budget`` of a successive-halving search, continuing
    from ``start_from`` (the previous rung's ``state_out``) or ``last.pt``; returns the
    summary written to ``summary_out``."""
    trainer = _trainer(
        cell, model, training, patch_dir, out_dir, pretrained, device, threads, budget,
        start_from, checkpoint_minutes,
    )  # fmt: skip
    return trainer.run_rung(rung, Path(state_out), Path(summary_out))


def _trainer(
    cell: Cell,
    model: ModelSettings,
    training: TrainingSettings,
    patch_dir: str | Path,
    out_dir: str | Path,
    pretrained: str | Path | None,
    device: str,
    threads: int | None,
    stop_at: int | None,
    start_from: str | Path | None,
    checkpoint_minutes: float = CHECKPOINT_MINUTES,
) -> Trainer:
    """The :class:`Trainer` of :func:`train` and :func:`train_rung` (run folder created)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return Trainer(
        cell,
        model,
        training,
        Path(patch_dir),
        out_dir,
        pretrained=Path(pretrained) if pretrained else None,
        device=device,
        threads=threads,
        stop_at=stop_at,
        start_from=Path(start_from) if start_from else None,
        checkpoint_minutes=checkpoint_minutes,
    )


def _hms(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


__all__ = ["PreemptedError", "Trainer", "train", "train_rung"]
