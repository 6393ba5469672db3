"""KBNet (Zhang et al., "KBNet: Kernel Basis Network for Image Restoration", 2023), the small
variant ``KBNet_s`` used for Gaussian denoising.

A NAFNet-like U-Net (width 64, encoder blocks [2, 2, 4, 8], 12 middle blocks, decoder blocks
[2, 2, 2, 2]; 2x2 stride-2 convolutions down, 1x1 convolution + pixel-shuffle up, additive
skips). Each block combines channel attention, a grouped 5x5 branch and the **kernel basis
attention** (KBA): the block owns ``nset`` learnable grouped 3x3 kernels (the basis ``w`` with
bias ``b``); a small branch predicts, per pixel, ``nset`` mixing coefficients; the pixel's
kernel is the mixture of the basis. Then a SimpleGate feed-forward network.

KBA computation here. The official code materialises every pixel's mixed kernel
(``att @ w``: ``H*W x C*C/g*9`` values) and applies it with a batch of tiny per-pixel matrix
products. Mixing is linear, so the same result is obtained by convolving the input with every
basis kernel at once (one grouped 3x3 convolution with ``nset`` times the output channels) and
mixing the ``nset`` responses per pixel with the coefficients. Same numbers, no per-pixel
kernels and large dense GEMMs instead of tiny batched ones; the mixture itself is a
multiply-then-sum over the basis axis (in both memory formats), not a batch of per-pixel
matrix products. Under bf16 autocast the block keeps its stream in bf16 (the LayerNorm's
statistics in float32, its output and the learned scales in the stream's dtype).

Parameter names follow the official ``KBNet_s`` so that ``gau_gray_*.pth`` (weights under
``net``, DataParallel ``module.`` prefix stripped by the loader) load with ``strict=True``.
As in the official forward, the input is zero-padded to a multiple of 16 and the output cropped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel axis of an NCHW tensor (eps 1e-6), with weight and bias."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # statistics in float32 whatever the input (bf16 under autocast), output in its dtype:
        # the next convolution runs in it without a cast of its own
        xf = x.float()
        var, mean = torch.var_mean(xf, dim=1, keepdim=True, correction=0)
        y = (xf - mean) * torch.rsqrt(var + self.eps)
        y = y * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
        return y.to(x.dtype)


class SimpleGate(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        return a * b


def kernel_basis_attention(
    x: torch.Tensor,
    att: torch.Tensor,
    w: torch.Tensor,
    b: torch.Tensor,
    k: int,
    groups: int,
    mixing: str = "sum",
) -> torch.Tensor:
    """Apply per-pixel mixtures of ``nset`` grouped ``k x k`` kernels to ``x``.

    ``x``: (B, C, H, W); ``att``: (B, nset, H, W) mixing coefficients; ``w``: (1, nset,
    C * C/groups * k*k) the kernel basis; ``b``: (1, nset, C) the bias basis.

    The ``nset`` responses of each pixel are mixed by a multiply-then-sum over the basis axis
    in both memory formats (on channels_last the responses of a pixel are contiguous and the
    sum runs over them in place). ``mixing="matmul"`` is the former channels_last form, one
    batched ``(1 x nset) @ (nset x cg)`` product per pixel and group: tiny batched GEMMs that
    GPUs run many times slower than the reduction (kept for ``benchmarks/training.py``).
    """
    bsz, c, h, wd = x.shape
    nset = att.shape[1]
    cg = c // groups
    # basis n, group g, out o, in i, ky, kx  ->  conv weight rows ordered (g, n, o)
    weight = (
        w.view(nset, groups, cg, cg, k, k).transpose(0, 1).reshape(groups * nset * cg, cg, k, k)
    )
    y = F.conv2d(x, weight.to(x.dtype), padding=k // 2, groups=groups)
    att = att.to(y.dtype)
    if y.is_contiguous(memory_format=torch.channels_last) and not y.is_contiguous():
        # channels_last: a pixel's (g, nset, cg) responses are contiguous: a free view
        yp = y.permute(0, 2, 3, 1).view(bsz, h, wd, groups, nset, cg)
        ap = att.permute(0, 2, 3, 1).reshape(bsz, h, wd, 1, nset, 1)
        if mixing == "matmul":
            mixed = torch.matmul(
                ap.reshape(bsz * h * wd, 1, 1, nset), yp.reshape(bsz * h * wd, groups, nset, cg)
            )
        else:
            mixed = (yp * ap).sum(4)
        out = mixed.reshape(bsz, h, wd, c).permute(0, 3, 1, 2)
    elif torch.is_grad_enabled():
        # NCHW, training: one fused multiply-reduce is the cheapest to differentiate
        y = y.view(bsz, groups, nset, cg, h, wd)
        out = (y * att[:, None, :, None]).sum(2).reshape(bsz, c, h, wd)
    else:
        # NCHW, inference: accumulate basis by basis, no (B, g, nset, cg, H, W) temporary
        y = y.view(bsz, groups, nset, cg, h, wd)
        acc = y[:, :, 0] * att[:, None, 0:1]
        for n in range(1, nset):
            acc.addcmul_(y[:, :, n], att[:, None, n : n + 1])
        out = acc.reshape(bsz, c, h, wd)
    bias = F.conv2d(att, b.view(nset, c).t()[:, :, None, None].to(att.dtype))
    return out + bias


class KBBlock_s(nn.Module):  # noqa: N801 (official name)
    """The KBNet_s block; argument names as in the official code."""

    def __init__(
        self,
        c: int,
        DW_Expand: int = 2,  # noqa: N803
        FFN_Expand: int = 2,  # noqa: N803
        nset: int = 32,
        k: int = 3,
        gc: int = 4,
        lightweight: bool = False,
    ) -> None:
        super().__init__()
        self.k, self.c, self.nset = k, c, nset
        #: how kernel_basis_attention mixes the basis responses ("sum"; "matmul" for benchmarks)
        self.mixing = "sum"
        dw_ch, ffn_ch = int(c * DW_Expand), int(FFN_Expand * c)
        self.g = c // gc
        self.w = nn.Parameter(torch.zeros(1, nset, c * c // self.g * k**2))
        self.b = nn.Parameter(torch.zeros(1, nset, c))
        self._init_basis()
        self.norm1 = LayerNorm2d(c)
        self.norm2 = LayerNorm2d(c)
        self.sca = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(c, c, 1))
        if lightweight:
            spatial = nn.Conv2d(c, c, 3, padding=1, groups=c)
        else:
            spatial = nn.Conv2d(c, c, 5, padding=2, groups=c // 4)
        self.conv11 = nn.Sequential(nn.Conv2d(c, c, 1), spatial)
        self.conv1 = nn.Conv2d(c, c, 1)
        self.conv21 = nn.Conv2d(c, c, 3, padding=1, groups=c)
        interc = min(c, 32)
        self.conv2 = nn.Sequential(
            nn.Conv2d(c, interc, 3, padding=1, groups=interc),
            SimpleGate(),
            nn.Conv2d(interc // 2, nset, 1),
        )
        self.conv211 = nn.Conv2d(c, nset, 1)
        self.conv3 = nn.Conv2d(dw_ch // 2, c, 1)
        self.conv4 = nn.Conv2d(c, ffn_ch, 1)
        self.conv5 = nn.Conv2d(ffn_ch // 2, c, 1)
        self.ga1 = nn.Parameter(torch.full((1, c, 1, 1), 1e-2))
        self.attgamma = nn.Parameter(torch.full((1, nset, 1, 1), 1e-2))
        self.sg = SimpleGate()
        self.beta = nn.Parameter(torch.full((1, c, 1, 1), 1e-2))
        self.gamma = nn.Parameter(torch.full((1, c, 1, 1), 1e-2))

    def _init_basis(self) -> None:
        # The official default: Kaiming-uniform basis (a=sqrt(5)), bias uniform in 1/sqrt(fan_in).
        nn.init.kaiming_uniform_(self.w, a=math.sqrt(5))
        fan_in = self.w.shape[1] * self.w.shape[2]
        bound = 1 / math.sqrt(fan_in)
        nn.init.uniform_(self.b, -bound, bound)

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        x = self.norm1(inp)
        dt = x.dtype  # bf16 under autocast: the float32 scales below must not promote the
        # stream back to float32 (each promotion is a cast and twice the bytes)
        sca = self.sca(x)
        x1 = self.conv11(x)
        att = self.conv2(x) * self.attgamma.to(dt) + self.conv211(x)
        uf = self.conv21(self.conv1(x))
        kba = kernel_basis_attention(uf, att, self.w, self.b, self.k, self.g, self.mixing)
        x = kba * self.ga1.to(dt) + uf
        x = self.conv3(x * x1 * sca)
        y = inp + x * self.beta.to(inp.dtype)
        x = self.conv5(self.sg(self.conv4(self.norm2(y))))
        return y + x * self.gamma.to(y.dtype)


class KBNet_s(nn.Module):  # noqa: N801 (official name)
    """The official ``KBNet_s`` with its constructor arguments."""

    def __init__(
        self,
        img_channel: int = 3,
        width: int = 64,
        middle_blk_num: int = 12,
        enc_blk_nums: Sequence[int] = (2, 2, 4, 8),
        dec_blk_nums: Sequence[int] = (2, 2, 2, 2),
        basicblock: str = "KBBlock_s",
        lightweight: bool = False,
        ffn_scale: int = 2,
    ) -> None:
        super().__init__()
        if basicblock != "KBBlock_s":
            raise ValueError(f"only basicblock='KBBlock_s' is implemented, got {basicblock!r}")

        def blocks(ch: int, n: int) -> nn.Sequential:
            return nn.Sequential(
                *[KBBlock_s(ch, FFN_Expand=ffn_scale, lightweight=lightweight) for _ in range(n)]
            )

        self.intro = nn.Conv2d(img_channel, width, 3, padding=1)
        self.ending = nn.Conv2d(width, img_channel, 3, padding=1)
        self.encoders, self.downs = nn.ModuleList(), nn.ModuleList()
        self.ups, self.decoders = nn.ModuleList(), nn.ModuleList()
        chan = width
        for num in enc_blk_nums:
            self.encoders.append(blocks(chan, num))
            self.downs.append(nn.Conv2d(chan, 2 * chan, 2, 2))
            chan *= 2
        self.middle_blks = blocks(chan, middle_blk_num)
        for num in dec_blk_nums:
            self.ups.append(
                nn.Sequential(nn.Conv2d(chan, chan * 2, 1, bias=False), nn.PixelShuffle(2))
            )
            chan //= 2
            self.decoders.append(blocks(chan, num))
        self.padder_size = 2 ** len(self.encoders)

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        h, w = inp.shape[-2:]
        ph, pw = (-h) % self.padder_size, (-w) % self.padder_size
        inp = F.pad(inp, (0, pw, 0, ph))
        x = self.intro(inp)
        skips = []
        for encoder, down in zip(self.encoders, self.downs, strict=True):
            x = encoder(x)
            skips.append(x)
            x = down(x)
        x = self.middle_blks(x)
        for decoder, up, skip in zip(self.decoders, self.ups, skips[::-1], strict=True):
            x = decoder(up(x) + skip)
        x = self.ending(x) + inp
        return x[:, :, :h, :w]
