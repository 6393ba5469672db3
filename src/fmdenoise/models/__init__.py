"""Model registry: ``build(arch, **kwargs)`` for the study's four architectures.

``arch`` is one of ``drunet``, ``restormer``, ``kbnet``, ``care_unet``; ``kwargs`` are the
official constructor arguments (so that full-size and small demo widths are one class).
:data:`GRAY_DEFAULTS` holds the published grayscale configurations.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from torch import nn

from fmdenoise.models.care_unet import CAREUNet
from fmdenoise.models.drunet import DRUNet, ResBlock
from fmdenoise.models.kbnet import KBBlock_s, KBNet_s
from fmdenoise.models.restormer import Restormer, TransformerBlock


@dataclasses.dataclass(frozen=True)
class ArchInfo:
    """What the wrapper needs to know about an architecture."""

    factory: Callable[..., nn.Module]
    defaults: dict[str, Any]
    multiple: int  # spatial multiple the raw forward needs (KBNet pads itself)
    noise_map: bool = False  # DRUNet: a noise-level map is the second input channel
    #: the repeated block types compiled one by one (regional compilation,
    #: fmdenoise.train.compile); none: the network is compiled whole
    regions: tuple[type[nn.Module], ...] = ()


REGISTRY: dict[str, ArchInfo] = {
    "drunet": ArchInfo(
        DRUNet, {"in_nc": 2, "out_nc": 1}, multiple=8, noise_map=True, regions=(ResBlock,)
    ),
    "restormer": ArchInfo(
        Restormer, {"inp_channels": 1, "out_channels": 1}, multiple=8, regions=(TransformerBlock,)
    ),
    "kbnet": ArchInfo(KBNet_s, {"img_channel": 1}, multiple=1, regions=(KBBlock_s,)),
    "care_unet": ArchInfo(CAREUNet, {}, multiple=4),
}

#: The published grayscale Gaussian-denoising configurations.
GRAY_DEFAULTS: dict[str, dict[str, Any]] = {
    "drunet": {"in_nc": 2, "out_nc": 1, "nc": [64, 128, 256, 512], "nb": 4},
    "restormer": {
        "inp_channels": 1,
        "out_channels": 1,
        "dim": 48,
        "num_blocks": [4, 6, 6, 8],
        "num_refinement_blocks": 4,
        "heads": [1, 2, 4, 8],
        "ffn_expansion_factor": 2.66,
        "bias": False,
        "LayerNorm_type": "BiasFree",
    },
    "kbnet": {"img_channel": 1},
    "care_unet": {},
}


def arch_info(arch: str) -> ArchInfo:
    try:
        return REGISTRY[arch]
    except KeyError:
        raise ValueError(f"unknown architecture {arch!r} (known: {', '.join(REGISTRY)})") from None


def build(arch: str, **kwargs: Any) -> nn.Module:
    """Construct ``arch`` with its grayscale defaults overridden by ``kwargs``."""
    info = arch_info(arch)
    return info.factory(**{**info.defaults, **kwargs})


def multiple(arch: str, **kwargs: Any) -> int:
    """Spatial multiple the network needs (CARE: 2**depth)."""
    if arch == "care_unet":
        return 2 ** int(kwargs.get("unet_n_depth", 2))
    return arch_info(arch).multiple


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
