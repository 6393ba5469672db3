"""Percentile normalisation, shared by patch extraction, training and inference.

An image is mapped by ``x -> (x - lo) / (hi - lo)`` with ``lo``/``hi`` its low/high
percentiles (config ``normalization``); inference undoes the input's map on the output.
"""

from __future__ import annotations

import numpy as np

EPS = 1e-6


def percentiles(image: np.ndarray, low: float = 0.1, high: float = 99.9) -> tuple[float, float]:
    """The ``low``/``high`` percentiles of ``image`` as floats."""
    lo, hi = np.percentile(image, [low, high])
    return float(lo), float(hi)


def normalize(image: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Affine map taking ``lo`` to 0 and ``hi`` to 1 (float32)."""
    return ((image - lo) / max(hi - lo, EPS)).astype(np.float32)


def denormalize(image: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Inverse of :func:`normalize`."""
    return (image * max(hi - lo, EPS) + lo).astype(np.float32)


def normalize_percentile(
    image: np.ndarray, low: float = 0.1, high: float = 99.9
) -> tuple[np.ndarray, tuple[float, float]]:
    """Normalise ``image`` by its own percentiles; return it with the ``(lo, hi)`` used."""
    lo, hi = percentiles(image, low, high)
    return normalize(image, lo, hi), (lo, hi)
