"""Tiled inference and the metric function."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from fmdenoise.evaluate.inference import denoise_normalized, ramp, tile_starts
from fmdenoise.evaluate.metrics import affine_fit, evaluate, psnr, ssim
from fmdenoise.models import build
from fmdenoise.models.wrapper import Denoiser


def test_tiles_cover_the_image_and_weights_blend_to_one():
    assert tile_starts(100, 40, 10) == [0, 30, 60]
    assert tile_starts(30, 40, 10) == [0]
    total = np.zeros(100, np.float32)
    for s in tile_starts(100, 40, 10):
        total[s : s + 40] += ramp(40, 10, s == 0, s + 40 >= 100)
    assert total.min() > 0.99 and total.max() < 1.01


@pytest.mark.parametrize("shape", [(123, 77), (300, 260)])
def test_tiled_matches_whole_image_for_a_conv_model(shape):
    torch.manual_seed(0)
    model = Denoiser(
        build("drunet", nc=[8, 16, 32, 64], nb=1),
        "drunet",
        noise_level={"mode": "fixed", "sigma": 0.1},
    ).eval()
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    whole = denoise_normalized(model, x)
    tiled = denoise_normalized(model, x, tile=96, overlap=32)
    assert tiled.shape == shape
    # bound: what the receptive field sees beyond the 32-pixel overlap contributes little
    assert np.abs(tiled - whole).max() < 1e-3
    assert np.abs(tiled - whole).mean() < 1e-4


@pytest.mark.slow
def test_tiled_2048_image():
    model = Denoiser(build("care_unet", unet_n_first=8), "care_unet").eval()
    x = np.random.default_rng(0).random((2048, 2048), dtype=np.float32)
    out = denoise_normalized(model, x, tile=512, overlap=64)
    assert out.shape == (2048, 2048) and np.isfinite(out).all()


def test_psnr_ssim_agree_with_skimage_and_known_answers():
    rng = np.random.default_rng(0)
    gt = rng.random((64, 64)).astype(np.float32)
    pred = (gt + 0.05 * rng.standard_normal(gt.shape)).astype(np.float32)
    assert psnr(gt, pred) == pytest.approx(peak_signal_noise_ratio(gt, pred, data_range=1.0))
    assert ssim(gt, pred) == pytest.approx(
        structural_similarity(
            gt, pred, data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
        )
    )
    # known answers: MSE 0.01 at range 1 is 20 dB; identical images have SSIM 1
    assert psnr(np.zeros((8, 8)), np.full((8, 8), 0.1)) == pytest.approx(20.0)
    assert ssim(gt, gt) == pytest.approx(1.0)


def test_affine_fit_is_invariant_to_scale_and_offset():
    rng = np.random.default_rng(1)
    gt = rng.random((32, 32)).astype(np.float32) * 300 + 50
    pred = gt + rng.normal(0, 10, gt.shape).astype(np.float32)
    a = evaluate(gt, pred)
    b = evaluate(gt, 3.7 * pred - 12.0)
    assert a["psnr"] == pytest.approx(b["psnr"], abs=1e-4)
    assert a["ssim"] == pytest.approx(b["ssim"], abs=1e-5)
    assert a["psnr_raw"] != pytest.approx(b["psnr_raw"])
    # the fit of an exact affine copy is exact
    np.testing.assert_allclose(affine_fit(2 * gt + 1, gt), gt, rtol=1e-5)


def test_validation_metrics_on_the_device_equal_scikit_image_patch_by_patch():
    """PSNR and SSIM of a batch scored in torch (the validation's) equal the study's convention
    computed patch by patch with scikit-image (affine_fit, psnr, ssim) within 1e-6."""
    import torch

    from fmdenoise.evaluate.metrics import affine_fit, fitted_psnr_ssim_torch, psnr, ssim

    rng = np.random.default_rng(3)
    gt = rng.random((6, 1, 48, 40)).astype(np.float32)
    pred = (0.7 * gt + 0.2 + 0.05 * rng.standard_normal(gt.shape)).astype(np.float32)
    pred[5] = 0.3  # a constant prediction: the fit gives the target's mean
    got = fitted_psnr_ssim_torch(torch.from_numpy(pred), torch.from_numpy(gt)).numpy()
    for i in range(len(gt)):
        fitted = affine_fit(pred[i, 0], gt[i, 0])
        assert got[i, 0] == pytest.approx(psnr(gt[i, 0], fitted), abs=1e-6)
        assert got[i, 1] == pytest.approx(ssim(gt[i, 0], fitted), abs=1e-6)
