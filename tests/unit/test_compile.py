"""torch.compile for training, block by block (fmdenoise.train.compile): compiled and eager
training agree on CPU, for the four architectures, and compilation keeps the weights' names."""

from __future__ import annotations

import copy

import pytest
import torch

from fmdenoise.models import arch_info, build
from fmdenoise.models.wrapper import Denoiser
from fmdenoise.train.compile import compile_regions, use_cache

from ..helpers import SMALL

#: compiled kernels fuse and reorder float32 sums: loss and gradients agree to this
RTOL = 1e-4


def steps(model: torch.nn.Module, n: int = 3) -> tuple[list[float], list[torch.Tensor]]:
    """``n`` AdamW steps on fixed batches; the losses and the last step's gradients."""
    torch.manual_seed(1)
    batches = [torch.rand(4, 1, 32, 32) for _ in range(n)]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for x in batches:
        x = x.contiguous(memory_format=torch.channels_last)
        opt.zero_grad()
        loss = (model(x) - x).abs().mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses, [p.grad.detach().clone() for p in model.parameters() if p.grad is not None]


@pytest.mark.slow
@pytest.mark.parametrize("arch", list(SMALL))
def test_compiled_training_equals_eager(arch, tmp_path, monkeypatch):
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    monkeypatch.delenv("TRITON_CACHE_DIR", raising=False)
    use_cache(tmp_path / "cache")
    torch.manual_seed(0)
    eager = Denoiser(build(arch, **SMALL[arch]), arch, SMALL[arch])
    eager = eager.to(memory_format=torch.channels_last)
    compiled = copy.deepcopy(eager)
    n = compile_regions(compiled.net, arch)
    regions = arch_info(arch).regions
    assert n == (sum(isinstance(m, regions) for m in eager.modules()) if regions else 1)
    assert compiled.state_dict().keys() == eager.state_dict().keys()  # checkpoints unchanged
    ref_losses, ref_grads = steps(eager)
    losses, grads = steps(compiled)
    assert losses == pytest.approx(ref_losses, rel=RTOL)
    for g, r in zip(grads, ref_grads, strict=True):
        assert (g - r).abs().max().item() <= RTOL * max(r.abs().max().item(), 1e-6)
    assert (tmp_path / "cache" / "inductor").is_dir()  # the shared cache was used
