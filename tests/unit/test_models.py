"""Models: official key names/shapes, reference outputs, checkpoint containers, the wrapper."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch

from fmdenoise.data.normalize import denormalize, normalize_percentile
from fmdenoise.errors import CheckpointError
from fmdenoise.evaluate.inference import denoise_array
from fmdenoise.models import GRAY_DEFAULTS, build, count_parameters
from fmdenoise.models.checkpoints import load_model, read_checkpoint, save_model
from fmdenoise.models.wrapper import Denoiser, estimate_sigma

from ..helpers import SMALL

TSV = {"drunet": "drunet_gray", "restormer": "restormer_gray", "kbnet": "kbnet_gray"}


def read_keys(path):
    keys, params, header = {}, None, None
    for line in path.read_text().splitlines():
        if line.startswith("# parameters"):
            params = int(line.split()[-1])
        elif line.startswith("#") and header is None:
            header = json.loads(line[line.index("{") :])
        elif not line.startswith("#"):
            name, shape = line.split("\t")
            keys[name] = tuple(int(s) for s in shape.split(","))
    return keys, params, header


@pytest.mark.parametrize("arch", ["drunet", "restormer", "kbnet"])
def test_full_size_keys_shapes_and_parameter_count(reference_dir, arch):
    keys, params, header = read_keys(reference_dir / f"{TSV[arch]}.keys.tsv")
    model = build(arch, **header)  # the official constructor arguments, by their official names
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert got == keys
    assert count_parameters(model) == params
    assert build(arch, **GRAY_DEFAULTS[arch]).state_dict().keys() == model.state_dict().keys()


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("arch", ["drunet", "restormer", "kbnet"])
def test_reference_outputs_reproduced(reference_dir, arch, layout):
    ref = torch.load(reference_dir / f"{arch}_small.pt", weights_only=False)
    model = build(arch, **ref["config"]).eval()
    model.load_state_dict(ref["state_dict"], strict=True)
    model = model.to(memory_format=layout)
    ref["input"] = ref["input"].contiguous(memory_format=layout)
    with torch.no_grad():
        out = model(ref["input"])
    assert (out - ref["output"]).abs().max().item() <= 1e-5
    # the training path (autograd on) computes the same numbers
    out_grad = model(ref["input"].clone().requires_grad_(True))
    assert (out_grad.detach() - ref["output"]).abs().max().item() <= 1e-5


@pytest.mark.parametrize(
    ("arch", "fmt", "wrap"),
    [
        ("drunet", "kair", lambda sd: sd),
        ("restormer", "restormer", lambda sd: {"params": sd}),
        (
            "kbnet",
            "kbnet",
            lambda sd: {"net": {f"module.{k}": v for k, v in sd.items()}, "iter": 3},
        ),
    ],
)
def test_published_container_round_trip(tmp_path, arch, fmt, wrap):
    src = build(arch, **SMALL[arch])
    torch.save(wrap(src.state_dict()), tmp_path / "published.pth")
    model, meta = load_model(tmp_path / "published.pth", arch, SMALL[arch], fmt)
    for k, v in src.state_dict().items():
        assert torch.equal(model.state_dict()[k], v)
    save_model(tmp_path / "own.pt", model, arch, SMALL[arch], source="test")
    again, meta = load_model(tmp_path / "own.pt")
    assert meta["arch"] == arch and meta["source"] == "test"
    assert all(torch.equal(again.state_dict()[k], v) for k, v in src.state_dict().items())


def test_wrong_file_names_missing_and_unexpected_keys(tmp_path):
    sd = build("drunet", **SMALL["drunet"]).state_dict()
    sd.pop("m_tail.weight")
    sd["extra.weight"] = torch.zeros(1)
    torch.save(sd, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError) as err:
        load_model(tmp_path / "bad.pth", "drunet", SMALL["drunet"], "kair")
    msg = str(err.value)
    assert "bad.pth" in msg and "m_tail.weight" in msg and "extra.weight" in msg
    torch.save(build("restormer", **SMALL["restormer"]).state_dict(), tmp_path / "r.pth")
    with pytest.raises(CheckpointError, match="must hold key 'params'"):
        load_model(tmp_path / "r.pth", "restormer", SMALL["restormer"], "restormer")
    with pytest.raises(CheckpointError, match="missing keys"):
        load_model(tmp_path / "r.pth", "drunet", SMALL["drunet"], "kair")


class Boom:
    def __reduce__(self):
        return (print, ("this would run",))


def test_code_executing_pickle_is_refused(tmp_path):
    with open(tmp_path / "evil.pth", "wb") as fh:
        pickle.dump({"params": Boom()}, fh)
    with pytest.raises(CheckpointError, match="could execute code"):
        read_checkpoint(tmp_path / "evil.pth")


def test_truncated_checkpoint(tmp_path):
    torch.save(build("drunet", **SMALL["drunet"]).state_dict(), tmp_path / "t.pth")
    data = (tmp_path / "t.pth").read_bytes()
    (tmp_path / "t.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        read_checkpoint(tmp_path / "t.pth")


@pytest.mark.parametrize("arch", ["drunet", "restormer", "kbnet", "care_unet"])
def test_wrapper_keeps_odd_shapes(arch):
    model = Denoiser(build(arch, **SMALL[arch]), arch, SMALL[arch]).eval()
    image = np.random.default_rng(0).random((123, 77), dtype=np.float32) * 500 + 100
    out = denoise_array(model, image)
    assert out.shape == (123, 77) and out.dtype == np.float32 and np.isfinite(out).all()


def test_normalisation_round_trip():
    image = np.random.default_rng(0).gamma(2.0, 50.0, (64, 64)).astype(np.float32) + 100
    x, (lo, hi) = normalize_percentile(image, 0.1, 99.9)
    assert abs(np.percentile(x, 0.1)) < 1e-5 and abs(np.percentile(x, 99.9) - 1) < 1e-5
    np.testing.assert_allclose(denormalize(x, lo, hi), image, rtol=1e-5, atol=1e-3)


def test_drunet_noise_map():
    seen = {}

    class Probe(torch.nn.Module):
        def forward(self, x):
            seen["x"] = x
            return x[:, :1]

    x = torch.rand(2, 1, 64, 64) * 0.1 + 0.5
    noise = torch.randn(2, 1, 64, 64) * torch.tensor([0.05, 0.2]).view(2, 1, 1, 1)
    Denoiser(Probe(), "drunet", noise_level={"mode": "fixed", "sigma": 0.07})(x)
    assert seen["x"].shape == (2, 2, 64, 64)
    assert torch.allclose(seen["x"][:, 1], torch.full((2, 64, 64), 0.07))
    Denoiser(Probe(), "drunet", noise_level={"mode": "estimate"})(x * 0 + 0.5 + noise)
    levels = seen["x"][:, 1, 0, 0]
    assert torch.allclose(levels, torch.tensor([0.05, 0.2]), rtol=0.1)
    assert torch.allclose(estimate_sigma(noise), torch.tensor([0.05, 0.2]), rtol=0.1)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_kbnet_mixing_forms_agree(layout):
    """The multiply-then-sum mixing of the kernel basis equals the former per-pixel batched
    matmul (channels_last) within float32 rounding, forward and backward."""
    from fmdenoise.models.kbnet import kernel_basis_attention

    torch.manual_seed(0)
    x = torch.randn(2, 16, 12, 10).contiguous(memory_format=layout).requires_grad_(True)
    att = torch.randn(2, 8, 12, 10).contiguous(memory_format=layout)
    w = torch.randn(1, 8, 16 * 4 * 9) * 0.1
    b = torch.randn(1, 8, 16) * 0.1
    new = kernel_basis_attention(x, att, w, b, 3, 4)
    (g_new,) = torch.autograd.grad(new.square().sum(), x)
    old = kernel_basis_attention(x, att, w, b, 3, 4, mixing="matmul")
    (g_old,) = torch.autograd.grad(old.square().sum(), x)
    assert (new - old).abs().max().item() <= 1e-5
    assert (g_new - g_old).abs().max().item() <= 1e-4 * g_old.abs().max().item()


@pytest.mark.parametrize("arch", ["kbnet", "restormer"])
def test_bf16_autocast_keeps_the_stream_in_bf16(arch):
    """Under bf16 autocast the blocks' float32 scales and LayerNorms do not turn the residual
    stream back to float32 (every such promotion is a cast kernel and twice the bytes)."""
    model = build(arch, **SMALL[arch]).to(memory_format=torch.channels_last)
    block = model.encoders[0][0] if arch == "kbnet" else model.encoder_level1[0]
    x = torch.randn(1, block.norm1.body.weight.shape[0] if arch == "restormer"
                    else block.norm1.weight.shape[0], 16, 16)  # fmt: skip
    x = x.contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert block(x.bfloat16()).dtype == torch.bfloat16
        assert block.norm1(x.bfloat16()).dtype == torch.bfloat16
