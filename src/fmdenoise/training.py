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

import contextlib
import copy
import dataclasses
import hashlib
import json
import logging
import platform
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from fmdenoise import __version__
from fmdenoise import device as dev
from fmdenoise.augment import augment_pair
from fmdenoise.errors import FmdenoiseError
from fmdenoise.io import atomic_path, write_json, write_text
from fmdenoise.losses import get_loss
from fmdenoise.metrics import affine_fit, psnr, ssim
from fmdenoise.models import build, count_parameters
from fmdenoise.models.checkpoints import load_model, save_model
from fmdenoise.models.wrapper import Denoiser
from fmdenoise.patches import load_patches

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


class StepBatches(Dataset):
    """Batch ``i`` is the batch of training step ``first_step + i`` (a pure function of it)."""

    def __init__(
        self,
        patch_dir: Path,
        batch_size: int,
        seed: int,
        aug: bool,
        first_step: int,
        last_step: int,
        preload: bool = False,
    ) -> None:
        self.low, self.gt = load_patches(patch_dir, "train")
        if preload:  # read everything into memory (benchmarks compare with memory-mapping)
            self.low, self.gt = np.array(self.low), np.array(self.gt)
        self.batch_size, self.seed, self.aug = batch_size, seed, aug
        self.first_step, self.n = first_step, max(0, last_step - first_step + 1)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        step = self.first_step + i
        rng = np.random.default_rng([self.seed, step])
        idx = rng.integers(0, len(self.low), self.batch_size)
        low = torch.from_numpy(np.ascontiguousarray(self.low[idx]))
        gt = torch.from_numpy(np.ascontiguousarray(self.gt[idx]))
        if self.aug:
            low, gt = augment_pair(low, gt, torch.from_numpy(rng.integers(0, 8, self.batch_size)))
        return low, gt


def code_version() -> str:
    """``fmdenoise <version>`` plus the git commit of the checkout when there is one."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
            timeout=5,
            check=True,
        ).stdout.strip()
        return f"{__version__}+g{sha}"
    except (OSError, subprocess.SubprocessError):
        return __version__


def signature(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


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


def validate(
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
    """
    patch_dir, out_dir = Path(patch_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg = dict(training_cfg)
    steps, batch_size = int(cfg["steps"]), int(cfg["batch_size"])
    sig = signature(
        {
            "cell": dataclasses.asdict(cell),
            "model": model_cfg,
            "training": cfg,
            "patches": (patch_dir / "patches.json").read_text(),
        }
    )
    device_t = dev.resolve(device)
    workers = max(0, (threads or 1) - 1) if device_t.type == "cuda" else 0
    if threads and device_t.type == "cpu":
        torch.set_num_threads(threads)
    model = dev.prepare(
        make_model(cell, model_cfg, Path(pretrained) if pretrained else None), device_t
    )
    if cfg.get("compile"):
        model = torch.compile(model)  # type: ignore[assignment]
    opt, sched = make_optimizer(model, cell, cfg)
    loss_fn = get_loss(cell.loss, cfg["ssim_l1_weight"])
    state = {
        "step": 0,
        "best": None,
        "best_step": 0,
        "best_state": None,
        "curve": [],
        "elapsed": 0.0,
        "bad_vals": 0,
        "resumed_from": None,
        "loss_sum": 0.0,
        "loss_n": 0,
    }
    last = out_dir / "last.pt"
    if last.exists():
        saved = torch.load(last, map_location="cpu", weights_only=True)
        if saved.get("signature") == sig:
            model.load_state_dict(saved["model"])
            opt.load_state_dict(saved["optimizer"])
            sched.load_state_dict(saved["scheduler"])
            torch.set_rng_state(saved["rng"])
            state.update({k: saved[k] for k in RESUME_KEYS})
            state["resumed_from"] = saved["step"]
            log.info("resuming from %s at step %d", last, saved["step"])
        else:
            log.warning("%s belongs to another configuration; starting afresh", last)

    def save_last() -> None:
        payload = {
            "signature": sig,
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "rng": torch.get_rng_state(),
            **{k: state[k] for k in RESUME_KEYS},
        }
        with atomic_path(last) as tmp:
            torch.save(payload, tmp)

    if state["step"] == 0:  # where each initialisation starts from (zero-shot for pretrained)
        state["curve"].append(
            {
                "step": 0,
                "seconds": 0.0,
                "train_loss": float("nan"),
                **validate(model, patch_dir, loss_fn, device_t, batch_size),
                "lr": sched.get_last_lr()[0],
            }
        )
    batches = StepBatches(
        patch_dir, batch_size, cell.seed, cell.aug == "rot", state["step"] + 1, steps, preload
    )
    loader = DataLoader(
        batches,
        batch_size=None,
        shuffle=False,
        num_workers=workers,
        pin_memory=device_t.type == "cuda",
        persistent_workers=False,
        prefetch_factor=4 if workers else None,
    )
    val_every, ckpt_every = int(cfg["val_every"]), int(cfg["checkpoint_every"])
    log_every = max(1, min(val_every, steps // 20 or 1))
    run_losses: list[float] = []
    t0, start_step = time.perf_counter(), state["step"]
    model.train()
    with stop_requested() as stop:
        for low, gt in loader:
            step = state["step"] + 1
            low = low.to(device_t, non_blocking=True).contiguous(
                memory_format=dev.memory_format(device_t)
            )
            gt = gt.to(device_t, non_blocking=True)
            with dev.autocast(device_t):
                pred = model(low)
            loss = loss_fn(pred.float(), gt)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg["grad_clip"]:
                torch.nn.utils.clip_grad_norm_(model.parameters(), float(cfg["grad_clip"]))
            opt.step()
            sched.step()
            state["step"] = step
            run_losses.append(loss.item())
            state["loss_sum"] += run_losses[-1]
            state["loss_n"] += 1
            elapsed = state["elapsed"] + time.perf_counter() - t0
            if step % log_every == 0 or step == steps:
                rate = (step - start_step) * batch_size / max(time.perf_counter() - t0, 1e-9)
                eta = (steps - step) * batch_size / max(rate, 1e-9)
                log.info(
                    "step %d/%d loss %.5f %.1f patches/s ETA %s",
                    step,
                    steps,
                    float(np.mean(run_losses[-log_every:])),
                    rate,
                    _hms(eta),
                )
            if step % val_every == 0 or step == steps:
                metrics = validate(model, patch_dir, loss_fn, device_t, batch_size)
                state["curve"].append(
                    {
                        "step": step,
                        "seconds": round(elapsed, 3),
                        "train_loss": state["loss_sum"] / max(state["loss_n"], 1),
                        **metrics,
                        "lr": sched.get_last_lr()[0],
                    }
                )
                log.info("validation at step %d: %s", step, metrics)
                state["loss_sum"], state["loss_n"] = 0.0, 0
                if state["best"] is None or metrics["val_psnr"] > state["best"]["val_psnr"]:
                    state.update(
                        best=metrics,
                        best_step=step,
                        bad_vals=0,
                        best_state=copy.deepcopy(
                            {k: v.detach().cpu() for k, v in model.state_dict().items()}
                        ),
                    )
                else:
                    state["bad_vals"] += 1
            stopping = bool(stop) or (
                cfg["patience"] is not None and state["bad_vals"] >= cfg["patience"]
            )
            if step % ckpt_every == 0 or step == steps or stopping:
                state["elapsed"] = state["elapsed"] + time.perf_counter() - t0
                t0 = time.perf_counter()
                save_last()
            if stop:
                raise PreemptedError(
                    f"signal {stop['signal']} at step {step}: saved {last}; rerun to resume"
                )
            if stopping:
                log.info(
                    "early stop at step %d: no improvement in %d validations", step, cfg["patience"]
                )
                break
    state["elapsed"] += time.perf_counter() - t0
    return _finish(cell, model, model_cfg, cfg, state, out_dir, device_t, sig)


def _finish(
    cell: Cell,
    model: Denoiser,
    model_cfg: Mapping[str, Any],
    cfg: Mapping[str, Any],
    state: dict[str, Any],
    out_dir: Path,
    device_t: torch.device,
    sig: str,
) -> dict[str, Any]:
    net = copy.deepcopy(model.net).cpu()
    if state["best_state"] is not None:
        net.load_state_dict(
            {k[len("net.") :]: v for k, v in state["best_state"].items() if k.startswith("net.")}
        )
    save_model(
        out_dir / "model.pt",
        net,
        model_cfg["arch"],
        model_cfg.get("kwargs", {}),
        cell=dataclasses.asdict(cell),
        best_step=state["best_step"],
        best=state["best"],
    )
    curve = pd.DataFrame(state["curve"], columns=CURVE_COLUMNS)
    write_text(out_dir / "curve.csv", curve.to_csv(index=False))
    gpus = 1 if device_t.type == "cuda" else 0
    run = {
        "cell": dataclasses.asdict(cell),
        "config": {"model": dict(model_cfg), "training": dict(cfg)},
        "signature": sig,
        "code_version": code_version(),
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(device_t) if gpus else (platform.processor() or "cpu"),
        "device_type": device_t.type,
        "threads": torch.get_num_threads(),
        "parameters": count_parameters(model.net),
        "steps_done": state["step"],
        "best_step": state["best_step"],
        "best": state["best"],
        "wall_seconds": round(state["elapsed"], 3),
        "gpu_hours": round(state["elapsed"] / 3600 * gpus, 6),
        "resumed_from": state["resumed_from"],
    }
    write_json(out_dir / "run.json", run)
    return run


def _hms(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
