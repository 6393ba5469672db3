"""Variance stabilisation for Poisson-Gaussian noise: the classical baseline as microscopists
run it (BM3D after the generalized Anscombe transform, method ``bm3d-vst``).

A camera image is ``z = alpha * p + n`` with ``p`` Poisson (photo-electrons), ``alpha`` the gain
and ``n`` Gaussian read noise of mean ``mu`` and variance ``sigma**2``, so that
``Var[z] = alpha * E[z] + beta`` with ``beta = sigma**2 - alpha * mu``.
:func:`~fmdenoise.data.noise.estimate_noise` (the images' noise model, shared with the data
stage) fits ``alpha`` and ``beta`` on the image itself. The generalized Anscombe transform
(:func:`gat`, Murtagh, Starck & Bijaoui 1995) makes the noise approximately unit-variance
Gaussian; :func:`inverse_gat` is the closed-form approximation of its exact unbiased inverse
(Makitalo & Foi 2013), which maps the *denoised* (expected) transformed value back to the mean
intensity; :func:`inverse_gat_algebraic` is the plain algebraic inverse (``inverse(gat(z)) = z``).
"""

from __future__ import annotations

import numpy as np

SQRT_3_2 = np.sqrt(1.5)


def gat(z: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """Generalized Anscombe transform: ``2 sqrt((alpha z + beta) / alpha**2 + 3/8)``."""
    arg = (alpha * np.asarray(z, dtype=np.float64) + beta) / alpha**2 + 0.375
    return 2.0 * np.sqrt(np.maximum(arg, 0.0))


def inverse_gat_algebraic(d: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """The algebraic inverse of :func:`gat` (exact where the square root's argument >= 0)."""
    y = (np.asarray(d, dtype=np.float64) / 2.0) ** 2 - 0.375
    return (alpha**2 * y - beta) / alpha


def inverse_gat(d: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """Closed-form approximation of the exact unbiased inverse (Makitalo & Foi): the mean
    intensity whose transformed expectation is ``d``."""
    d = np.maximum(np.asarray(d, dtype=np.float64), 1e-6)
    poisson_mean = 0.25 * d**2 + 0.25 * SQRT_3_2 / d - 1.375 / d**2 + 0.625 * SQRT_3_2 / d**3
    poisson_mean = np.maximum(poisson_mean - 0.125, 0.0)
    # back from the unit-gain domain: y = p - sigma'^2 shift expressed through beta
    return alpha * poisson_mean - beta / alpha
