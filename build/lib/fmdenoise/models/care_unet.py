"""The CARE U-Net baseline (Weigert et al., Nature Methods 2018), CSBDeep defaults.

``n_depth`` levels of ``n_conv_per_depth`` 3x3 convolutions + ReLU, 2x2 max-pooling down,
nearest-neighbour upsampling and concatenated skips up, a 1x1 linear output and (``residual``)
the input added back. Defaults are CSBDeep's: depth 2, 32 first-layer filters, 3x3 kernels,
residual. Trained from scratch only (it has no natural-image checkpoint).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _convs(c_in: int, widths: list[int], k: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for w in widths:
        layers += [nn.Conv2d(c_in, w, k, padding=k // 2), nn.ReLU(inplace=True)]
        c_in = w
    return nn.Sequential(*layers)


class CAREUNet(nn.Module):
    """CSBDeep-style U-Net; argument names follow CSBDeep's ``Config``."""

    def __init__(
        self,
        n_channel_in: int = 1,
        n_channel_out: int = 1,
        unet_n_depth: int = 2,
        unet_n_first: int = 32,
        unet_kern_size: int = 3,
        n_conv_per_depth: int = 2,
        unet_residual: bool = True,
    ) -> None:
        super().__init__()
        if unet_residual and n_channel_in != n_channel_out:
            raise ValueError("a residual U-Net needs as many input as output channels")
        self.residual = unet_residual
        f, k, n = unet_n_first, unet_kern_size, n_conv_per_depth
        self.down = nn.ModuleList()
        c = n_channel_in
        for i in range(unet_n_depth):
            self.down.append(_convs(c, [f * 2**i] * n, k))
            c = f * 2**i
        self.middle = _convs(
            c, [f * 2**unet_n_depth] * (n - 1) + [f * 2 ** max(0, unet_n_depth - 1)], k
        )
        c = f * 2 ** max(0, unet_n_depth - 1)
        self.up = nn.ModuleList()
        for i in reversed(range(unet_n_depth)):
            c_in = c + f * 2**i
            self.up.append(_convs(c_in, [f * 2**i] * (n - 1) + [f * 2 ** max(0, i - 1)], k))
            c = f * 2 ** max(0, i - 1)
        self.final = nn.Conv2d(c, n_channel_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips, y = [], x
        for block in self.down:
            y = block(y)
            skips.append(y)
            y = F.max_pool2d(y, 2)
        y = self.middle(y)
        for block, skip in zip(self.up, reversed(skips), strict=True):
            y = F.interpolate(y, scale_factor=2, mode="nearest")
            y = block(torch.cat([y, skip], dim=1))
        y = self.final(y)
        return y + x if self.residual else y
