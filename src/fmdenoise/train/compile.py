"""``torch.compile`` for training, per block (regional compilation), with a shared cache.

Compiling a whole network traces every block of it: Restormer's whole-model compilation took
over 250 s on an H200. The networks are stacks of a few block types repeated at a few widths
(:attr:`fmdenoise.models.ArchInfo.regions`: KBNet's ``KBBlock_s``, Restormer's
``TransformerBlock``, DRUNet's ``ResBlock``), so each block is compiled in place
(``nn.Module.compile``): one graph per block type, width and mode (training, and the
validation's inference), reused by every block of that shape, and the glue between blocks
stays eager. CARE (a few convolutions) is compiled whole.

The compiled code is cached on disk by inductor; :func:`use_cache` points that cache (and
Triton's, on a GPU) at one folder the study's jobs share (``compile_cache`` in the config,
default ``<results>/cache/torch``; on a cluster, a folder every node sees), so that only the
first job of a model pays for compilation.
"""

from __future__ import annotations

import os
from pathlib import Path

from torch import nn

from fmdenoise.models import arch_info

#: recompilations allowed per code object: the blocks of one type share their forward's code,
#: and each width x (train, eval) is one variant (KBNet: 5 widths x 2 modes)
RECOMPILE_LIMIT = 32


def use_cache(folder: str | Path | None) -> None:
    """Let inductor (and Triton) cache compiled kernels in ``folder`` (None: torch's default,
    per user under /tmp). Set before the first compilation; an explicit environment wins.
    Nothing is created until something is compiled."""
    if folder is None:
        return
    root = Path(folder).resolve()
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(root / "inductor"))
    os.environ.setdefault("TRITON_CACHE_DIR", str(root / "triton"))


def compile_regions(net: nn.Module, arch: str) -> int:
    """Compile ``net`` in place, block by block (see the module docstring); returns the number
    of modules compiled (1: the whole network, for an architecture without regions)."""
    import torch._dynamo

    config = torch._dynamo.config
    for name in ("recompile_limit", "cache_size_limit"):  # the name changed across releases
        if hasattr(config, name):
            setattr(config, name, max(int(getattr(config, name)), RECOMPILE_LIMIT))
    regions = arch_info(arch).regions
    blocks = [m for m in net.modules() if regions and isinstance(m, regions)]
    for block in blocks:
        block.compile(dynamic=False)
    if not blocks:
        net.compile(dynamic=False)
    return max(1, len(blocks))


__all__ = ["RECOMPILE_LIMIT", "compile_regions", "use_cache"]
