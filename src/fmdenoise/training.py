"""Fine-tuning one grid cell: a resumable, preemptible training loop.

One call of :func:`train` trains one (model, dataset, loss, lr, init, aug, seed) cell on the
memory-mapped patches and writes, in the run folder:

- ``last.pt``: everything needed to resume (model, optimiser, scheduler, best weights so far,
  curve, step, elapsed time), written atomically every ``checkpoint_every`` steps and when the
  process receives SIGTERM/SIGINT (what SLURM sends on preemption and time-out);
- ``model.pt``: the best-on-validation weights (project checkpoint format), at the end;
- ``curve.csv``: step, seconds, train loss, validation loss/PSNR/SSIM, learning rate;
- ``run.json``: resolved config, code version, device, parameter count, steps, best step, wall
  time and GPU-hours.

Batches are a pure function of (seed, step): the patch indices and the dihedral transform of
every sample are drawn from a generator seeded with both. A resumed run therefore sees the same
batches as an uninterrupted one and, on CPU, ends with the same weights.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import platform
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from fmdenoise import device as dev
from fmdenoise.batches import StepBatches
from fmdenoise.errors import FmdenoiseError
from fmdenoise.io import atomic_path, write_json, write_text
from fmdenoise.losses import get_loss
from fmdenoise.metrics import affine_fit, psnr, ssim
from fmdenoise.models import build, count_parameters
from fmdenoise.models.checkpoints import load_model, save_model
from fmdenoise.models.wrapper import Denoiser
from fmdenoise.patches import load_patches
from fmdenoise.provenance import code_version, signature
from fmdenoise.signals import stop_requested

log = logging.getLogger(__name__)

#: the loop state saved in last.pt besides model, optimiser, scheduler and RNG
RESUME_KEYS = (
    "step",
    "best",
    "best_step",
    "best_state",
    "curve",
    "elapsed",
    "bad_vals",
    "loss_sum",
    "loss_n",
)
CURVE_COLUMNS = ["step", "seconds", "train_loss", "val_loss", "val_psnr", "val_ssim", "lr"]


class PreemptedError(FmdenoiseError):
    """Training stopped on a signal after saving ``last.pt``; rerun to resume."""


@dataclasses.dataclass(frozen=True)
class Cell:
    """One grid cell."""

    model: str
    dataset: str
    loss: str
    lr: float
    init: str  # pretrained | scratch
    aug: str  # none | rot
    seed: int


def make_model(cell: Cell, model_cfg: Mapping[str, Any], pretrained: Path | None) -> Denoiser:
    """The wrapped network, initialised from ``pretrained`` or by the architecture's default."""
    torch.manual_seed(cell.seed)
    arch, kwargs = model_cfg["arch"], dict(model_cfg.get("kwargs", {}))
    if cell.init == "pretrained":
        if pretrained is None:
            raise FmdenoiseError(f"{cell}: init 'pretrained' needs pretrained/{cell.model}.pt")
        net, meta = load_model(pretrained, arch)
        if meta["kwargs"] != kwargs:
            raise FmdenoiseError(
                f"{pretrained}: built with {meta['kwargs']}, config says {kwargs} for {cell.model}"
            )
    else:
        net = build(arch, **kwargs)
    return Denoiser(net, arch, kwargs, model_cfg.get("noise_level"))


def make_optimizer(model: torch.nn.Module, cell: Cell, cfg: Mapping[str, Any]) -> tuple[Any, Any]:
    cls = torch.optim.AdamW if cfg["optimizer"] == "adamw" else torch.optim.Adam
    opt = cls(model.parameters(), lr=cell.lr, weight_decay=float(cfg["weight_decay"]))
    if cfg["schedule"] == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(
            opt, T_max=int(cfg["steps"]), eta_min=cell.lr * 0.01
        )
    else:
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    return opt, sched


def validation_metrics(
    model: Denoiser, patch_dir: Path, loss_fn: Any, device: torch.device, batch_size: int
) -> dict[str, float]:
    """Loss, PSNR and SSIM (study convention: affine fit, range 1) on the validation patches."""
    low, gt = load_patches(patch_dir, "val")
    model.eval()
    losses, psnrs, ssims = [], [], []
    with torch.inference_mode(), dev.autocast(device):
        for s in range(0, len(low), batch_size):
            x = torch.from_numpy(np.array(low[s : s + batch_size])).to(device)
            y = torch.from_numpy(np.array(gt[s : s + batch_size])).to(device)
            x = x.contiguous(memory_format=dev.memory_format(device))
            pred = model(x).float()
            losses.append(float(loss_fn(pred, y)) * len(x))
            for p, t in zip(pred.cpu().numpy()[:, 0], y.cpu().numpy()[:, 0], strict=True):
                fitted = affine_fit(p, t)
                psnrs.append(psnr(t, fitted))
                ssims.append(ssim(t, fitted))
    model.train()
    return {
        "val_loss": sum(losses) / len(low),
        "val_psnr": float(np.mean(psnrs)),
        "val_ssim": float(np.mean(ssims)),
    }


class Trainer:
    """The state and steps of one cell's training; :func:`train` is the entry point."""

    def __init__(
        self,
        cell: Cell,
        model_cfg: Mapping[str, Any],
        training_cfg: Mapping[str, Any],
        patch_dir: Path,
        out_dir: Path,
        *,
        pretrained: Path | None,
        device: str,
        threads: int | None,
    ) -> None:
        self.cell, self.model_cfg, self.cfg = cell, dict(model_cfg), dict(training_cfg)
        self.patch_dir, self.out_dir = patch_dir, out_dir
        self.steps, self.batch_size = int(self.cfg["steps"]), int(self.cfg["batch_size"])
        self.signature = signature(
            {
                "cell": dataclasses.asdict(cell),
                "model": self.model_cfg,
                "training": self.cfg,
                "patches": (patch_dir / "patches.json").read_text(),
            }
        )
        self.device = dev.resolve(device)
        self.workers = max(0, (threads or 1) - 1) if self.device.type == "cuda" else 0
        if threads and self.device.type == "cpu":
            torch.set_num_threads(threads)
        self.wrapper = dev.prepare(make_model(cell, model_cfg, pretrained), self.device)
        self.model = torch.compile(self.wrapper) if self.cfg.get("compile") else self.wrapper
        self.opt, self.sched = make_optimizer(self.wrapper, cell, self.cfg)
        self.loss_fn = get_loss(cell.loss, self.cfg["ssim_l1_weight"])
        self.state: dict[str, Any] = {
            "step": 0,
            "best": None,
            "best_step": 0,
            "best_state": None,
            "curve": [],
            "elapsed": 0.0,
            "bad_vals": 0,
            "loss_sum": 0.0,
            "loss_n": 0,
            "resumed_from": None,
        }
        self.last = out_dir / "last.pt"

    # ------------------------------------------------------------------ checkpoints
    def resume(self) -> None:
        """Load ``last.pt`` if it belongs to this exact configuration."""
        if not self.last.exists():
            return
        saved = torch.load(self.last, map_location="cpu", weights_only=True)
        if saved.get("signature") != self.signature:
            log.warning("%s belongs to another configuration; starting afresh", self.last)
            return
        self.wrapper.load_state_dict(saved["model"])
        self.opt.load_state_dict(saved["optimizer"])
        self.sched.load_state_dict(saved["scheduler"])
        torch.set_rng_state(saved["rng"])
        self.state.update({k: saved[k] for k in RESUME_KEYS}, resumed_from=saved["step"])
        log.info("resuming from %s at step %d", self.last, saved["step"])

    def save_last(self) -> None:
        payload = {
            "signature": self.signature,
            "model": self.wrapper.state_dict(),
            "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(),
            "rng": torch.get_rng_state(),
            **{k: self.state[k] for k in RESUME_KEYS},
        }
        with atomic_path(self.last) as tmp:
            torch.save(payload, tmp)

    # ------------------------------------------------------------------ steps
    def loader(self, preload: bool) -> DataLoader:
        batches = StepBatches(
            self.patch_dir,
            self.batch_size,
            self.cell.seed,
            self.cell.aug == "rot",
            self.state["step"] + 1,
            self.steps,
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

    def step(self, low: torch.Tensor, gt: torch.Tensor) -> float:
        """One optimisation step; returns the loss."""
        low = low.to(self.device, non_blocking=True)
        low = low.contiguous(memory_format=dev.memory_format(self.device))
        gt = gt.to(self.device, non_blocking=True)
        with dev.autocast(self.device):
            pred = self.model(low)
        loss = self.loss_fn(pred.float(), gt)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg["grad_clip"]:
            torch.nn.utils.clip_grad_norm_(self.wrapper.parameters(), float(self.cfg["grad_clip"]))
        self.opt.step()
        self.sched.step()
        value = loss.item()
        self.state["step"] += 1
        self.state["loss_sum"] += value
        self.state["loss_n"] += 1
        return value

    def validate(self, elapsed: float) -> None:
        """Validate, append a curve row, track the best weights and the patience count."""
        st = self.state
        metrics = validation_metrics(
            self.model, self.patch_dir, self.loss_fn, self.device, self.batch_size
        )
        train_loss = st["loss_sum"] / st["loss_n"] if st["loss_n"] else float("nan")
        st["curve"].append(
            {
                "step": st["step"],
                "seconds": round(elapsed, 3),
                "train_loss": train_loss,
                **metrics,
                "lr": self.sched.get_last_lr()[0],
            }
        )
        st["loss_sum"], st["loss_n"] = 0.0, 0
        log.info("validation at step %d: %s", st["step"], metrics)
        if st["step"] == 0:
            return  # the starting point is recorded, not a candidate
        if st["best"] is None or metrics["val_psnr"] > st["best"]["val_psnr"]:
            best_state = {k: v.detach().cpu().clone() for k, v in self.wrapper.state_dict().items()}
            st.update(best=metrics, best_step=st["step"], bad_vals=0, best_state=best_state)
        else:
            st["bad_vals"] += 1

    def run(self, preload: bool = False) -> dict[str, Any]:
        st, cfg = self.state, self.cfg
        self.resume()
        if st["step"] == 0:  # where each initialisation starts from (zero-shot for pretrained)
            self.validate(0.0)
        val_every, ckpt_every = int(cfg["val_every"]), int(cfg["checkpoint_every"])
        log_every = max(1, min(val_every, self.steps // 20 or 1))
        t0, start_step, recent = time.perf_counter(), st["step"], []
        self.model.train()
        with stop_requested() as stop:
            for low, gt in self.loader(preload):
                recent = [*recent[-log_every + 1 :], self.step(low, gt)]
                step, elapsed = st["step"], st["elapsed"] + time.perf_counter() - t0
                if step % log_every == 0 or step == self.steps:
                    rate = (
                        (step - start_step) * self.batch_size / max(time.perf_counter() - t0, 1e-9)
                    )
                    log.info(
                        "step %d/%d loss %.5f %.1f patches/s ETA %s",
                        step,
                        self.steps,
                        float(np.mean(recent)),
                        rate,
                        _hms((self.steps - step) * self.batch_size / max(rate, 1e-9)),
                    )
                if step % val_every == 0 or step == self.steps:
                    self.validate(elapsed)
                patience = cfg["patience"] is not None and st["bad_vals"] >= cfg["patience"]
                if step % ckpt_every == 0 or step == self.steps or stop or patience:
                    st["elapsed"], t0 = elapsed, time.perf_counter()
                    self.save_last()
                if stop:
                    raise PreemptedError(
                        f"signal {stop['signal']} at step {step}: saved {self.last}; "
                        "rerun to resume"
                    )
                if patience:
                    log.info(
                        "early stop at step %d: no improvement in %d validations",
                        step,
                        cfg["patience"],
                    )
                    break
        st["elapsed"] += time.perf_counter() - t0
        return self.finish()

    # ------------------------------------------------------------------ outputs
    def finish(self) -> dict[str, Any]:
        """Write model.pt (best weights), curve.csv and run.json; return run.json's content."""
        st = self.state
        net = copy.deepcopy(self.wrapper.net).cpu()
        if st["best_state"] is not None:
            net.load_state_dict(
                {
                    k.removeprefix("net."): v
                    for k, v in st["best_state"].items()
                    if k.startswith("net.")
                }
            )
        save_model(
            self.out_dir / "model.pt",
            net,
            self.model_cfg["arch"],
            self.model_cfg.get("kwargs", {}),
            cell=dataclasses.asdict(self.cell),
            best_step=st["best_step"],
            best=st["best"],
        )
        curve = pd.DataFrame(st["curve"], columns=CURVE_COLUMNS)
        write_text(self.out_dir / "curve.csv", curve.to_csv(index=False))
        gpus = 1 if self.device.type == "cuda" else 0
        run = {
            "cell": dataclasses.asdict(self.cell),
            "config": {"model": self.model_cfg, "training": self.cfg},
            "signature": self.signature,
            "code_version": code_version(),
            "torch": torch.__version__,
            "device": torch.cuda.get_device_name(self.device)
            if gpus
            else (platform.processor() or "cpu"),
            "device_type": self.device.type,
            "threads": torch.get_num_threads(),
            "parameters": count_parameters(self.wrapper.net),
            "steps_done": st["step"],
            "best_step": st["best_step"],
            "best": st["best"],
            "wall_seconds": round(st["elapsed"], 3),
            "gpu_hours": round(st["elapsed"] / 3600 * gpus, 6),
            "resumed_from": st["resumed_from"],
        }
        write_json(self.out_dir / "run.json", run)
        return run


def train(
    cell: Cell,
    model_cfg: Mapping[str, Any],
    training_cfg: Mapping[str, Any],
    patch_dir: str | Path,
    out_dir: str | Path,
    *,
    pretrained: str | Path | None = None,
    device: str = "auto",
    threads: int | None = None,
    preload: bool = False,
) -> dict[str, Any]:
    """Train one cell (resuming from ``out_dir/last.pt`` when it matches); returns run.json.

    ``threads`` (the job's cpus): torch's intra-op threads on CPU; on CUDA, loader workers
    (threads - 1) that prefetch batches into pinned memory so the GPU never waits.
    ``preload`` reads the patches into memory instead of memory-mapping them (benchmarks).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(
        cell,
        model_cfg,
        training_cfg,
        Path(patch_dir),
        out_dir,
        pretrained=Path(pretrained) if pretrained else None,
        device=device,
        threads=threads,
    )
    return trainer.run(preload)


def _hms(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
