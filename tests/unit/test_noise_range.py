"""The noise range a model was trained on: recorded from the training images, and checked on
a user's image (a warning with numbers at 10x the noise, none from the same distribution)."""

from __future__ import annotations

import numpy as np
import pytest

from fmdenoise.data.noise import describe_range, image_noise, noise_range, outside_range


def camera(rng, photons, gain=2.0, read_sd=3.0, offset=100.0):
    """A Poisson-Gaussian camera image of a smooth scene with ``photons`` at its peak."""
    y, x = np.mgrid[0:256, 0:256] / 256
    scene = photons * (0.2 + 0.8 * np.exp(-((x - 0.5) ** 2 + (y - 0.5) ** 2) / 0.05))
    return gain * rng.poisson(scene) + rng.normal(offset, read_sd, scene.shape)


def test_gain_and_noise_level_recovered():
    rng = np.random.default_rng(0)
    figures = image_noise(camera(rng, 200))
    assert figures["gain"] == pytest.approx(2.0, rel=0.15)
    # noise sd at the median intensity over the signal's range: sqrt(2 * 2 * ~60 + 9) / ~320
    assert 0.03 < figures["noise_level"] < 0.07


def test_warns_on_ten_times_the_noise_and_not_on_the_training_distribution():
    rng = np.random.default_rng(1)
    trained = noise_range(camera(rng, 200) for _ in range(6))
    assert trained["images"] == 6
    lo, hi = trained["noise_level"]["min"], trained["noise_level"]["max"]
    assert lo <= trained["noise_level"]["median"] <= hi
    same = image_noise(camera(np.random.default_rng(7), 200))
    assert outside_range(same, trained) is None
    # 10x the training noise: Gaussian noise of 10x its sd at the median added
    rng = np.random.default_rng(8)
    image = camera(rng, 200)
    sd = np.sqrt(2.0 * 2.0 * np.median((image - 100) / 2) + 9.0)
    noisy = image_noise(image + rng.normal(0, 10 * sd, image.shape))
    warning = outside_range(noisy, trained)
    assert warning is not None and "above the range the model was trained on" in warning
    assert f"{hi:.4f}" in warning and "over 6 training images" in warning
    ratio = float(warning.split(") is ")[1].split("x above")[0])
    assert 6 < ratio < 15
    clean = image_noise(camera(np.random.default_rng(9), 20000, gain=0.02))
    assert "below the range" in outside_range(clean, trained)
    # no recorded range (a published or an older model): nothing to say
    assert outside_range(noisy, None) is None and outside_range(noisy, {"images": 0}) is None
    assert "Trained on 6 images" in describe_range(trained)
    assert "was not recorded" in describe_range(None)
