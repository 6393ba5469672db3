"""The noise a model was trained on, and whether a new image lies within it.

Each low-SNR image is summarised by the same Poisson-Gaussian estimator the ``bm3d-vst``
baseline uses (:func:`estimate_noise`: ``Var[z] = alpha E[z] + beta``,
``alpha`` the gain, ``beta`` the read-noise term) and by its intensity percentiles. What the
network sees is the image normalised by its percentiles, so the figure that decides whether it
has seen such noise is the **relative noise level**: the noise standard deviation at the
image's median intensity over the range of its signal (``noise_level``; 0.05 means noise of
5 % of the signal's range). The signal's range is the 1st to 99th percentile of the image
smoothed by box filters of 2 and 7 pixels, so that noise barely widens it: on a synthetic
camera image, 10x the noise gives about 12x the level (the plain 0.1-99.9 percentile range of
the noisy image grows with the noise and would give about 4x). The patches job records the
range of these figures over the training images (``patches.json``, key ``noise``); every
training run copies it into ``run.json`` and
``model.pt``; ``fmdenoise denoise`` estimates them for each input image and warns, with the
numbers, when its noise level lies outside the training range (by more than ``tolerance``).

The noise model itself (:func:`estimate_noise`) lives here, in the first stage, because the data
stage (the training noise range) and the evaluation stage (the ``bm3d-vst`` baseline,
:mod:`fmdenoise.evaluate.vst`) both use it: a camera image is ``z = alpha * p + n`` with ``p``
Poisson, ``alpha`` the gain and ``n`` Gaussian read noise, so ``Var[z] = alpha * E[z] + beta``;
``alpha`` and ``beta`` are fitted on the image itself (local means against the local variance
of a high-pass residual, binned by intensity, robust per bin: the Foi et al. 2008 recipe in its
simplest form).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from scipy import ndimage


def estimate_noise(image: np.ndarray, bins: int = 16) -> tuple[float, float]:
    """``(alpha, beta)`` of ``Var[z] = alpha * E[z] + beta`` estimated from one image."""
    z = np.asarray(image, dtype=np.float64)
    h, w = (z.shape[0] // 2) * 2, (z.shape[1] // 2) * 2
    a, b = z[0:h:2, 0:w:2], z[1:h:2, 0:w:2]
    c, d = z[0:h:2, 1:w:2], z[1:h:2, 1:w:2]
    residual = (a - b - c + d) / 2.0  # Var = Var[z] for independent noise; kills smooth signal
    level = ndimage.uniform_filter((a + b + c + d) / 4.0, size=3)  # local mean
    edges = np.quantile(level, np.linspace(0, 1, bins + 1))
    means, variances, weights = [], [], []
    for lo, hi in itertools.pairwise(edges):
        inside = (level >= lo) & (level <= hi)
        if inside.sum() < 50:
            continue
        r = residual[inside]
        mad = np.median(np.abs(r - np.median(r)))
        means.append(float(np.median(level[inside])))
        variances.append(float((1.4826 * mad) ** 2))
        weights.append(float(inside.sum()))
    if len(means) < 2:
        return 1e-6, float(np.var(residual))
    alpha, beta = np.polyfit(means, variances, 1, w=np.sqrt(weights))
    return max(float(alpha), 1e-6), float(beta)


#: an input's noise level may lie this factor beyond the training range before a warning
TOLERANCE = 1.5
STATS = ("noise_level", "gain", "read_noise_var", "p_low", "p_high")
SMOOTH = (2, 7)  # box filter sides that estimate the signal behind the noise


def image_noise(image: np.ndarray, low: float = 0.1, high: float = 99.9) -> dict[str, float]:
    """The noise figures of one 2D image (its own units, except ``noise_level``)."""
    z = np.asarray(image, dtype=np.float64)
    alpha, beta = estimate_noise(z)
    p_low, median, p_high = (float(v) for v in np.percentile(z, [low, 50, high]))
    sd = math.sqrt(max(alpha * median + beta, 0.0))
    signal = ndimage.uniform_filter(ndimage.uniform_filter(z, SMOOTH[0]), SMOOTH[1])
    s_low, s_high = np.percentile(signal, [1, 99])
    return {
        "noise_level": sd / max(float(s_high - s_low), 1e-12),
        "gain": float(alpha),
        "read_noise_var": float(beta),
        "p_low": p_low,
        "p_high": p_high,
    }


def noise_range(images: Iterable[np.ndarray], low: float = 0.1, high: float = 99.9) -> dict:
    """Min, median and max of each figure over ``images`` (the training split), and their
    number."""
    per = [image_noise(im, low, high) for im in images]
    if not per:
        return {"images": 0}
    out: dict[str, Any] = {"images": len(per)}
    for key in STATS:
        values = np.array([p[key] for p in per])
        out[key] = {
            "min": float(values.min()),
            "median": float(np.median(values)),
            "max": float(values.max()),
        }
    return out


def outside_range(
    figures: Mapping[str, float], trained: Mapping[str, Any] | None, tolerance: float = TOLERANCE
) -> str | None:
    """A warning (with the numbers) when an image's relative noise level lies beyond the
    training range by more than ``tolerance``, else None (also when the model records no
    range: an older or a published model)."""
    if not trained or not trained.get("images"):
        return None
    rng = trained["noise_level"]
    level = figures["noise_level"]
    if rng["min"] / tolerance <= level <= rng["max"] * tolerance:
        return None
    side = "above" if level > rng["max"] else "below"
    ratio = level / rng["max"] if side == "above" else rng["min"] / level
    return (
        f"noise level {level:.4f} (noise sd at the median intensity over the signal's range; "
        f"gain {figures['gain']:.3g}, read-noise variance {figures['read_noise_var']:.3g}) is "
        f"{ratio:.1f}x {side} the range the model was trained on ({rng['min']:.4f} to "
        f"{rng['max']:.4f} over {trained['images']} training images): its output may not be "
        "reliable; use a model trained on noise like this image's"
    )


def describe_range(trained: Mapping[str, Any] | None) -> str:
    """One sentence stating the training range (model documentation, logs)."""
    if not trained or not trained.get("images"):
        return "The noise range of the training data was not recorded."
    rng, gain = trained["noise_level"], trained["gain"]
    return (
        f"Trained on {trained['images']} images with a relative noise level (noise sd at the "
        f"median intensity over the signal's range) from {rng['min']:.4f} to "
        f"{rng['max']:.4f} (median {rng['median']:.4f}) and an estimated Poisson gain from "
        f"{gain['min']:.3g} to {gain['max']:.3g}; `fmdenoise denoise` warns when an input lies "
        f"more than {TOLERANCE}x outside that noise range."
    )
