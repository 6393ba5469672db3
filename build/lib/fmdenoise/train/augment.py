"""Dihedral (D4) augmentation: the 8 rotations/flips of a square patch, applied identically
to input and target."""

from __future__ import annotations

import torch

N_TRANSFORMS = 8


def dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    """Transform ``k`` in 0..7 of the last two axes: ``k % 4`` quarter turns, flipped if k >= 4."""
    if not 0 <= k < N_TRANSFORMS:
        raise ValueError(f"dihedral transform index must be in 0..7, got {k}")
    if k >= 4:
        x = x.flip(-1)
    return torch.rot90(x, k % 4, dims=(-2, -1))


def augment_pair(
    low: torch.Tensor, gt: torch.Tensor, ks: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply transform ``ks[i]`` to sample ``i`` of both (B, C, S, S) batches."""
    out_low, out_gt = low.clone(), gt.clone()
    for i, k in enumerate(ks.tolist()):
        out_low[i] = dihedral(low[i], k)
        out_gt[i] = dihedral(gt[i], k)
    return out_low, out_gt
