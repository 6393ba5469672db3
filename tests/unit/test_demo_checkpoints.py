"""The demo's shipped pretrained checkpoints (demo/pretrained/): verified, loadable, real
Gaussian denoisers, and made by the recipe the demo config states."""

from __future__ import annotations

import hashlib

import pytest
import yaml

from fmdenoise.config import load_config
from fmdenoise.models.checkpoints import load_model
from fmdenoise.models.wrapper import Denoiser
from fmdenoise.train.pretrain import TRAIN_IMAGES, held_out_gain

from ..helpers import DEMO, ROOT

CONFIG = load_config(DEMO)
FINETUNED = [m for m, c in CONFIG["models"].items() if c["pretrained"]["source"] != "none"]


def test_every_finetuned_demo_model_uses_a_shipped_checkpoint():
    assert FINETUNED == ["drunet", "restormer", "kbnet"]
    overlay = yaml.safe_load((ROOT / "demo" / "pretrain.yaml").read_text())
    # `make demo-checkpoints` switches exactly these models to the pretrain rule
    assert sorted(overlay["models"]) == sorted(FINETUNED)
    assert all(m["pretrained"] == {"source": "pretrain"} for m in overlay["models"].values())
    for m in FINETUNED:
        pre = CONFIG["models"][m]["pretrained"]
        assert pre["source"] == "download" and pre["format"] == "fmdenoise"
        spec = CONFIG["downloads"][pre["download"]]
        assert spec["kind"] == "checkpoint" and spec["relative_to"] == "workflow"
        assert spec["url"] == f"file:demo/pretrained/{m}.pt"


@pytest.mark.parametrize("model", FINETUNED)
def test_shipped_checkpoint_matches_config_and_recipe(model):
    spec = CONFIG["downloads"][CONFIG["models"][model]["pretrained"]["download"]]
    path = ROOT / "demo" / "pretrained" / f"{model}.pt"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == spec["sha256"]
    # loads strictly, with the architecture and widths the demo config asks for
    net, meta = load_model(path, CONFIG["models"][model]["arch"])
    assert meta["kwargs"] == CONFIG["models"][model]["kwargs"]
    assert meta["source"] == "pretrain"
    prov = meta["provenance"]
    assert prov["recipe"] == CONFIG["pretrain"]  # the recipe the config states made it
    assert prov["images"] == list(TRAIN_IMAGES)
    assert prov["code_version"].startswith("0.") and prov["torch"].startswith("2.")
    assert meta["pretrain"]["steps"] == CONFIG["pretrain"]["steps"]
    # a real Gaussian denoiser: recomputed here on the held-out image, not read from the file
    gain = held_out_gain(Denoiser(net, meta["arch"], meta["kwargs"]))
    # (shipped: DRUNet +7.9, Restormer +8.1, KBNet +6.8 dB at width 4, the demo's cheapest)
    assert gain["gain_db"] > 6.5, gain
    assert gain["gain_db"] == pytest.approx(meta["pretrain"]["held_out"]["gain_db"], abs=1e-3)
