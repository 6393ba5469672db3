"""DRUNet (Zhang et al., "Plug-and-Play Image Restoration with Deep Denoiser Prior", TPAMI 2021).

A four-scale residual U-Net: a 3x3 head, at each scale ``nb`` residual blocks (conv-ReLU-conv,
identity skip) then a 2x2 stride-2 convolution down; ``nb`` residual blocks at the bottom; on
the way up a 2x2 stride-2 transposed convolution, additive skip from the encoder, ``nb``
residual blocks; a 3x3 tail. No biases. The input is the image plus a constant noise-level map.

Parameter names follow KAIR's ``UNetRes`` (``m_head``, ``m_down1.0.res.0`` ...) so that
``drunet_gray.pth`` loads with ``strict=True``. The forward pass is the official one: it does
not pad (the spatial size must be a multiple of 8; :mod:`fmdenoise.models.wrapper` pads).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class ResBlock(nn.Module):
    """``x + conv(relu(conv(x)))``; the convolutions sit at ``res.0`` and ``res.2``."""

    def __init__(self, channels: int, bias: bool = False) -> None:
        super().__init__()
        self.res = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=bias),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1, bias=bias),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.res(x)


class DRUNet(nn.Module):
    """KAIR ``UNetRes`` with its official constructor arguments."""

    # the levels are set by name in a loop (KAIR's key names); declared for the type checker
    m_down1: nn.Sequential
    m_down2: nn.Sequential
    m_down3: nn.Sequential
    m_body: nn.Module
    m_up3: nn.Sequential
    m_up2: nn.Sequential
    m_up1: nn.Sequential

    def __init__(
        self,
        in_nc: int = 2,
        out_nc: int = 1,
        nc: Sequence[int] = (64, 128, 256, 512),
        nb: int = 4,
        act_mode: str = "R",
        downsample_mode: str = "strideconv",
        upsample_mode: str = "convtranspose",
        bias: bool = False,
    ) -> None:
        super().__init__()
        if act_mode != "R" or downsample_mode != "strideconv" or upsample_mode != "convtranspose":
            raise ValueError(
                "only the published DRUNet variant is implemented: act_mode='R', "
                "downsample_mode='strideconv', upsample_mode='convtranspose'"
            )
        if len(nc) != 4:
            raise ValueError(f"nc must have 4 widths, got {list(nc)}")
        self.in_nc = in_nc
        self.m_head = nn.Conv2d(in_nc, nc[0], 3, padding=1, bias=bias)
        for level in (1, 2, 3):
            c_in, c_out = nc[level - 1], nc[level]
            blocks = [ResBlock(c_in, bias) for _ in range(nb)]
            down = nn.Conv2d(c_in, c_out, 2, stride=2, bias=bias)
            setattr(self, f"m_down{level}", nn.Sequential(*blocks, down))
        body = [ResBlock(nc[3], bias) for _ in range(nb)]
        # KAIR's ``sequential`` helper unwraps a single module; keep its key names for nb == 1.
        self.m_body = body[0] if nb == 1 else nn.Sequential(*body)
        for level in (3, 2, 1):
            c_in, c_out = nc[level], nc[level - 1]
            up = nn.ConvTranspose2d(c_in, c_out, 2, stride=2, bias=bias)
            setattr(
                self, f"m_up{level}", nn.Sequential(up, *[ResBlock(c_out, bias) for _ in range(nb)])
            )
        self.m_tail = nn.Conv2d(nc[0], out_nc, 3, padding=1, bias=bias)

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        x1 = self.m_head(x0)
        x2 = self.m_down1(x1)
        x3 = self.m_down2(x2)
        x4 = self.m_down3(x3)
        x = self.m_body(x4)
        x = self.m_up3(x + x4)
        x = self.m_up2(x + x3)
        x = self.m_up1(x + x2)
        return self.m_tail(x + x1)
