"""The microscopy side of a network: padding, DRUNet's noise-level map, cropping.

Raw networks do exactly what the official forward does. :class:`Denoiser` wraps one for the
study: it takes a batch of percentile-normalised images of any size, pads them (reflection) to
the architecture's spatial multiple, adds DRUNet's noise-level map (a fixed sigma, or one
estimated per image from the data), runs the network and crops back. Per-image normalisation
and its inverse live in :mod:`fmdenoise.evaluate.inference` (numpy side) and in the patches.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fmdenoise.models import arch_info, multiple

MAD_TO_SIGMA = 0.6745


def estimate_sigma(x: torch.Tensor) -> torch.Tensor:
    """Per-image Gaussian noise level of (B, 1, H, W) images (Donoho's MAD estimator).

    The finest diagonal Haar detail coefficients of an image are mostly noise; their median
    absolute value divided by 0.6745 estimates sigma. Returns shape (B,).
    """
    h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
    x = x[..., :h, :w].float()
    hh = (x[..., 0::2, 0::2] - x[..., 0::2, 1::2] - x[..., 1::2, 0::2] + x[..., 1::2, 1::2]) / 2
    return hh.flatten(1).abs().median(dim=1).values / MAD_TO_SIGMA


class Denoiser(nn.Module):
    """A network plus padding/cropping and (DRUNet) the noise-level map."""

    def __init__(
        self,
        net: nn.Module,
        arch: str,
        kwargs: Mapping[str, Any] | None = None,
        noise_level: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.net = net
        self.arch = arch
        self.multiple = multiple(arch, **dict(kwargs or {}))
        self.noise_map = arch_info(arch).noise_map
        nl = {"mode": "estimate", "sigma": 0.1, **dict(noise_level or {})}
        self.noise_mode, self.noise_sigma = nl["mode"], float(nl["sigma"])

    def sigma(self, x: torch.Tensor) -> torch.Tensor:
        """The noise level fed to DRUNet for each image of the batch, shape (B,)."""
        if self.noise_mode == "fixed":
            return torch.full((x.shape[0],), self.noise_sigma, device=x.device)
        return estimate_sigma(x)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | None = None) -> torch.Tensor:
        h, w = x.shape[-2:]
        ph, pw = (-h) % self.multiple, (-w) % self.multiple
        if ph or pw:
            mode = "reflect" if ph < h and pw < w else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
        if self.noise_map:
            s = self.sigma(x) if sigma is None else sigma
            level = s.to(x.dtype).view(-1, 1, 1, 1).expand(-1, 1, *x.shape[-2:])
            x = torch.cat([x, level], dim=1)
        y = self.net(x)
        return y[..., :h, :w]
