"""Losses, augmentation, selection and the resumable training loop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import torch

from fmdenoise.data.synthetic import write_toy_patches
from fmdenoise.evaluate.metrics import ssim
from fmdenoise.io import write_json
from fmdenoise.models.checkpoints import load_model
from fmdenoise.settings import ModelSettings, TrainingSettings
from fmdenoise.train.augment import augment_pair, dihedral
from fmdenoise.train.losses import NAMES, get_loss
from fmdenoise.train.selection import select_cell

from ..conftest import ROOT


def tiny_problem(seed=0):
    g = torch.Generator().manual_seed(seed)
    clean = torch.rand(8, 1, 24, 24, generator=g)
    noisy = clean + 0.2 * torch.randn(8, 1, 24, 24, generator=g)
    return noisy, clean


@pytest.mark.parametrize("name", NAMES)
def test_each_loss_decreases(name):
    torch.manual_seed(0)
    noisy, clean = tiny_problem()
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 1, 3, padding=1)
    )
    loss_fn = get_loss(name)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    first = None
    for _ in range(60):
        loss = loss_fn(net(noisy) + noisy, clean)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.8 * first


def test_ssim_loss_is_one_minus_the_metric():
    noisy, clean = tiny_problem(1)
    expected = 1 - np.mean(
        [ssim(c[0].numpy(), n[0].numpy()) for n, c in zip(noisy, clean, strict=True)]
    )
    assert get_loss("ssim")(noisy, clean).item() == pytest.approx(expected, abs=1e-5)
    mix = get_loss("ssim_l1", 0.84)(noisy, clean).item()
    l1 = (noisy - clean).abs().mean().item()
    assert mix == pytest.approx(0.84 * expected + 0.16 * l1, abs=1e-5)


def test_dihedral_covers_eight_transforms_applied_identically():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    outs = {tuple(dihedral(x, k).flatten().tolist()) for k in range(8)}
    assert len(outs) == 8
    low = torch.rand(8, 1, 6, 6)
    gt = low * 3 + 1  # a pixelwise function of low: survives only identical transforms
    a_low, a_gt = augment_pair(low, gt, torch.arange(8))
    assert torch.allclose(a_gt, a_low * 3 + 1)
    assert not torch.equal(a_low[1], low[1])


def test_selection_reads_validation_only(tmp_path):
    files = []
    for i, (loss, lr, val) in enumerate(
        [("mae", 1e-3, 30.0), ("mse", 1e-4, 31.5), ("ssim", 1e-3, 29.0)]
    ):
        d = tmp_path / f"r{i}"
        write_json(
            d / "run.json",
            {
                "cell": {"loss": loss, "lr": lr},
                "best": {"val_psnr": val, "val_ssim": 0.9},
                "best_step": 10,
            },
        )
        write_json(d / "test_metrics.json", {"psnr": 100 - val})  # test results next to it
        files.append(d / "run.json")
    chosen = select_cell(files)["selected"]
    assert (chosen["loss"], chosen["lr"]) == ("mse", 1e-4)
    write_json(tmp_path / "r0" / "test_metrics.json", {"psnr": 1000})
    assert select_cell(files)["selected"]["loss"] == "mse"
    assert "transfer_from" not in select_cell(files)
    moved = select_cell(files[1:2], transfer_from="nucleus")  # a dataset outside the sweep
    assert moved["transfer_from"]["dataset"] == "nucleus" and len(moved["candidates"]) == 1


# ----------------------------------------------------------------------------- the loop

#: a model's and the training's config sections as validated (what the schema fills in too)
MODEL_SECTION = {
    "arch": "drunet",
    "kwargs": {"nc": [8, 16, 16, 16], "nb": 1},
    "pretrained": {"source": "none", "format": "fmdenoise"},
    "noise_level": {"mode": "fixed", "sigma": 0.1, "zero_shot_mode": None},
}
TRAINING_SECTION = {
    "steps": 40,
    "batch_size": 4,
    "optimizer": "adamw",
    "weight_decay": 0.0,
    "schedule": "cosine",
    "grad_clip": 1.0,
    "val_every": 10,
    "checkpoint_every": 1000,
    "patience": None,
    "ssim_l1_weight": 0.84,
    "compile": False,
}
MODEL = ModelSettings.from_dict(MODEL_SECTION)
TRAINING = TrainingSettings.from_dict(TRAINING_SECTION)

SCRIPT = textwrap.dedent("""
    import logging, sys, time
    from fmdenoise.train.loop import train
    from fmdenoise.settings import ModelSettings, TrainingSettings
    from fmdenoise.train.setup import Cell
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    import fmdenoise.train.loop as t
    slow = t.StepBatches.__getitem__
    def paced(self, i):  # slow steps down so that the signal lands mid-run
        time.sleep(float(sys.argv[3]))
        return slow(self, i)
    t.StepBatches.__getitem__ = paced
    cell = Cell("drunet", "toy", "mae", 1e-3, "scratch", "rot", 0)
    model, training = ModelSettings.from_dict({model}), TrainingSettings.from_dict({training})
    train(cell, model, training, sys.argv[1], sys.argv[2], threads=1)
""")


def run_training(tmp_path, patches, out, pause=0.0):
    script = tmp_path / "train_toy.py"
    script.write_text(SCRIPT.format(model=repr(MODEL_SECTION), training=repr(TRAINING_SECTION)))
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, str(script), str(patches), str(out), str(pause)],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )


def test_keep_weights_selected_drops_the_other_candidates_weights(tmp_path):
    """grid.keep_weights: selected: after selection only the selected run's model.pt holds
    weights; the others become a note naming it (loading one says so), run.json stays, and
    dropping again changes nothing."""
    from fmdenoise.errors import CheckpointError
    from fmdenoise.models import build
    from fmdenoise.models.checkpoints import save_model
    from fmdenoise.train.selection import drop_unselected_weights

    files = []
    for i, val in enumerate([30.0, 31.5, 29.0]):
        d = tmp_path / f"r{i}"
        write_json(
            d / "run.json",
            {"cell": {"loss": "mae", "lr": 1e-3}, "best": {"val_psnr": val, "val_ssim": 0.9},
             "best_step": 10},
        )  # fmt: skip
        save_model(
            d / "model.pt", build("care_unet", unet_n_first=8), "care_unet", {"unet_n_first": 8}
        )
        files.append(d / "run.json")
    selection = select_cell(files)
    size = (tmp_path / "r0" / "model.pt").stat().st_size
    freed = drop_unselected_weights(selection)
    assert freed > 1.8 * size - 2 * 2000  # two notes of a few hundred bytes each
    load_model(tmp_path / "r1" / "model.pt")  # the selected run keeps its weights
    for dropped in ("r0", "r2"):
        path = tmp_path / dropped / "model.pt"
        assert path.stat().st_size < 2000 and (tmp_path / dropped / "run.json").is_file()
        with pytest.raises(CheckpointError, match=r"dropped after selection chose .*r1"):
            load_model(path)
    assert drop_unselected_weights(selection) == 0


@pytest.mark.slow
def test_killed_and_resumed_run_equals_uninterrupted(tmp_path):
    patches = write_toy_patches(tmp_path / "patches", 32, 16)
    full = run_training(tmp_path, patches, tmp_path / "full")
    assert full.wait(timeout=300) == 0, full.stderr.read()

    proc = run_training(tmp_path, patches, tmp_path / "cut", pause=0.05)
    for line in proc.stderr:
        if "step 14/40" in line:
            proc.send_signal(signal.SIGTERM)
            break
    rest = proc.stderr.read()
    assert proc.wait(timeout=300) != 0
    assert "PreemptedError" in rest
    assert (tmp_path / "cut" / "last.pt").exists() and not (tmp_path / "cut" / "model.pt").exists()

    resumed = run_training(tmp_path, patches, tmp_path / "cut")
    log = resumed.stderr.read()
    assert resumed.wait(timeout=300) == 0, log
    assert "resuming from" in log
    run = json.loads((tmp_path / "cut" / "run.json").read_text())
    assert 14 <= run["resumed_from"] < 40 and run["steps_done"] == 40

    a, _ = load_model(tmp_path / "full" / "model.pt")
    b, _ = load_model(tmp_path / "cut" / "model.pt")
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k
    ca = pd.read_csv(tmp_path / "full" / "curve.csv").drop(columns="seconds")
    cb = pd.read_csv(tmp_path / "cut" / "curve.csv").drop(columns="seconds")
    pd.testing.assert_frame_equal(ca, cb)
    assert list(ca.step) == [0, 10, 20, 30, 40]
    # finished for good: the optimizer state is dropped, what later steps read stays
    for folder in ("full", "cut"):
        left = sorted(p.name for p in (tmp_path / folder).iterdir())
        assert left == ["curve.csv", "model.pt", "run.json"], left


@pytest.mark.parametrize(("minutes", "saves"), [(0.0, 40), (60.0, 1)])
def test_checkpoints_by_wall_time_as_well_as_steps(tmp_path, monkeypatch, minutes, saves):
    """With checkpoint_every far away, last.pt is still written every checkpoint_minutes of
    wall time (0: every step) and at the end; the writes happen in the background from a host
    copy and the run's results do not depend on them."""
    from fmdenoise.train import state as state_module
    from fmdenoise.train.loop import train
    from fmdenoise.train.setup import Cell

    calls = []
    real = state_module.CheckpointWriter.save

    def counted(self, *args, **kwargs):
        calls.append(kwargs.get("wait", False))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(state_module.CheckpointWriter, "save", counted)
    patches = write_toy_patches(tmp_path / "patches", 32, 16)
    cell = Cell("drunet", "toy", "mae", 1e-3, "scratch", "rot", 0)
    run = train(cell, MODEL, TRAINING, patches, tmp_path / "out", threads=1,
                checkpoint_minutes=minutes)  # fmt: skip
    assert len(calls) == saves and calls[-1] is True  # the last one waited for its file
    assert run["steps_done"] == 40 and not (tmp_path / "out" / "last.pt").exists()
    curve = pd.read_csv(tmp_path / "out" / "curve.csv")
    assert list(curve.step) == [0, 10, 20, 30, 40] and curve.train_loss.iloc[1:].notna().all()


def test_checkpoint_writer_writes_what_save_last_writes_and_reports_failures(tmp_path):
    from fmdenoise.train.state import CheckpointWriter, RunState, Trainables, save_last

    net = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(net.parameters(), lr=0.1)
    net(torch.ones(1, 3)).sum().backward()
    opt.step()
    parts = Trainables(net, opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0))
    st = RunState(step=3, loss_sum=1.5, loss_n=3)
    save_last(tmp_path / "a.pt", "sig", parts, st)
    with CheckpointWriter() as writer:
        writer.save(tmp_path / "b.pt", "sig", parts, st)
        with torch.no_grad():
            net.weight.add_(1.0)  # training goes on: the file keeps the state at save time
    a = torch.load(tmp_path / "a.pt", weights_only=True)
    b = torch.load(tmp_path / "b.pt", weights_only=True)
    assert torch.equal(a["model"]["weight"], b["model"]["weight"]) and b["step"] == 3
    assert a["optimizer"]["state"][0]["exp_avg"].equal(b["optimizer"]["state"][0]["exp_avg"])
    (tmp_path / "a-file").write_text("not a folder")
    writer = CheckpointWriter()
    writer.save(tmp_path / "a-file" / "c.pt", "sig", parts, st)  # fails in the thread
    with pytest.raises(Exception):  # noqa: B017 (the write's own error, re-raised)
        writer.wait()
    writer.wait()  # reported once
