"""The generalized Anscombe transform of the bm3d-vst baseline: round trip, variance
stabilisation of synthetic Poisson-Gaussian data, the unbiased inverse, the noise estimate."""

from __future__ import annotations

import numpy as np
import pytest

from fmdenoise.data.noise import estimate_noise
from fmdenoise.data.synthetic import nucleus, optics
from fmdenoise.evaluate.vst import gat, inverse_gat, inverse_gat_algebraic

ALPHA, SIGMA, MU = 2.5, 4.0, 100.0  # gain, read noise, camera offset
BETA = SIGMA**2 - ALPHA * MU


def camera(photons, rng):
    return ALPHA * rng.poisson(photons) + rng.normal(MU, SIGMA, np.shape(photons))


def test_algebraic_round_trip():
    z = np.linspace(MU - SIGMA, 5000, 1001)  # where the square root's argument is >= 0
    np.testing.assert_allclose(inverse_gat_algebraic(gat(z, ALPHA, BETA), ALPHA, BETA), z)


@pytest.mark.parametrize("photons", [5, 20, 100, 500])
def test_variance_is_stabilised_and_the_inverse_is_unbiased(photons):
    rng = np.random.default_rng(photons)
    z = camera(np.full(200_000, float(photons)), rng)
    raw_var = np.var(z)
    assert raw_var == pytest.approx(ALPHA**2 * photons + SIGMA**2, rel=0.02)  # grows with signal
    t = gat(z, ALPHA, BETA)
    assert np.var(t) == pytest.approx(1.0, abs=0.05)  # unit variance at every level
    # the unbiased inverse of the transformed mean gives back the mean intensity
    assert inverse_gat(np.mean(t), ALPHA, BETA) == pytest.approx(ALPHA * photons + MU, rel=2e-3)
    # ...where the algebraic inverse is biased low (Jensen)
    assert inverse_gat_algebraic(np.mean(t), ALPHA, BETA) < ALPHA * photons + MU - 0.5


def test_noise_parameters_are_estimated_from_one_image():
    rng = np.random.default_rng(0)
    clean = optics(nucleus(512, rng), "widefield") * 60
    alpha, beta = estimate_noise(camera(clean, rng))
    assert alpha == pytest.approx(ALPHA, rel=0.15)
    assert beta == pytest.approx(BETA, abs=0.15 * abs(BETA))


def test_bm3d_vst_denoises_poisson_gaussian_data():
    from fmdenoise.evaluate.predict import bm3d_vst_denoise

    rng = np.random.default_rng(1)
    clean = optics(nucleus(96, rng), "widefield") * 20
    noisy = camera(clean, rng).astype(np.float32)
    truth = ALPHA * clean + MU
    out = bm3d_vst_denoise(noisy)
    assert out.dtype == np.float32 and out.shape == noisy.shape
    err_in, err_out = np.mean((noisy - truth) ** 2), np.mean((out - truth) ** 2)
    assert err_out < 0.5 * err_in
    assert abs(out.mean() - truth.mean()) < 0.02 * truth.mean()  # no intensity bias
