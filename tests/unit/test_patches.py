"""Patch extraction: shapes, determinism, and that the foreground bias works."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fmdenoise.data.ingest import ingest_dataset, split_images
from fmdenoise.data.patches import build_patches, load_patches, sample_corners
from fmdenoise.errors import ImageError
from fmdenoise.settings import NormalizationSettings, PatchSettings

from .test_ingest import STACK_CFG, make_stacks

PATCH = PatchSettings(
    size=16, per_image=5, foreground_threshold=0.4, foreground_fraction=1.0, seed=0
)
NORM = NormalizationSettings(low_percentile=0.1, high_percentile=99.9)


def sparse_gt(size=128, seed=0):
    """Dark image with one bright square in a corner: 1/16 of the area."""
    img = np.random.default_rng(seed).normal(0, 0.01, (size, size)).astype(np.float32)
    img[: size // 4, : size // 4] += 1.0
    return img


def test_foreground_bias_measurably_works():
    gt = sparse_gt()
    rng = np.random.default_rng(0)
    biased = sample_corners(gt, 16, 400, threshold=0.4, fraction=1.0, rng=rng)
    uniform = sample_corners(gt, 16, 400, threshold=0.4, fraction=0.0, rng=rng)

    def signal_fraction(corners):
        return np.mean([gt[y : y + 16, x : x + 16].max() > 0.5 for y, x in corners])

    assert signal_fraction(biased) > 0.95
    assert signal_fraction(uniform) < 0.35


def test_too_small_image_is_an_error():
    with pytest.raises(ImageError, match="smaller than the patch size"):
        sample_corners(
            np.ones((8, 8)), 16, 1, threshold=0.4, fraction=1.0, rng=np.random.default_rng()
        )


def test_build_patches_shapes_and_determinism(tmp_path):
    make_stacks(tmp_path / "src")
    ingest_dataset(tmp_path / "src", STACK_CFG, tmp_path / "data", val_fraction=0.2, seed=0)
    info = build_patches(tmp_path / "data", tmp_path / "p1", PATCH, NORM)
    build_patches(tmp_path / "data", tmp_path / "p2", PATCH, NORM)
    assert info["splits"]["train"]["shape"] == [40, 1, 16, 16]
    assert info["splits"]["val"]["shape"] == [10, 1, 16, 16]
    # the noise range of the 8 training images (low side), as fmdenoise.data.noise measures it
    from fmdenoise.data.noise import image_noise
    from fmdenoise.io import read_image

    levels = [
        image_noise(read_image(low))["noise_level"]
        for _, low, _ in split_images(tmp_path / "data", "train")
    ]
    assert info["noise"]["images"] == len(levels) == 8
    assert info["noise"]["noise_level"]["max"] == pytest.approx(max(levels))
    for split in ("train", "val"):
        a_low, a_gt = load_patches(tmp_path / "p1", split)
        b_low, b_gt = load_patches(tmp_path / "p2", split)
        assert isinstance(a_low, np.memmap) and a_low.dtype == np.float32
        np.testing.assert_array_equal(a_low, b_low)
        np.testing.assert_array_equal(a_gt, b_gt)
    # normalised: the percentile range maps to [0, 1]
    low, _ = load_patches(tmp_path / "p1", "train")
    assert -0.1 < float(np.median(low)) < 1.1
    other = build_patches(
        tmp_path / "data", tmp_path / "p3", dataclasses.replace(PATCH, seed=1), NORM
    )
    assert other["splits"]["train"]["shape"] == info["splits"]["train"]["shape"]
    assert not np.array_equal(
        load_patches(tmp_path / "p3", "train")[0], load_patches(tmp_path / "p1", "train")[0]
    )
