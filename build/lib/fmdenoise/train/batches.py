"""Training batches as a pure function of (seed, step).

Batch ``i`` of :class:`StepBatches` is the batch of training step ``first_step + i``: its patch
indices (drawn with replacement) and each sample's dihedral transform come from a generator
seeded with ``(seed, step)``. A resumed run therefore sees exactly the batches an uninterrupted
one would, with no sampler state to save, and loader workers can prefetch freely.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from fmdenoise.data.patches import load_patches
from fmdenoise.train.augment import augment_pair


class StepBatches(Dataset):
    """Batch ``i`` is the batch of training step ``first_step + i`` (a pure function of it)."""

    def __init__(
        self,
        patch_dir: Path,
        batch_size: int,
        seed: int,
        aug: bool,
        first_step: int,
        last_step: int,
        preload: bool = False,
    ) -> None:
        self.low, self.gt = load_patches(patch_dir, "train")
        if preload:  # read everything into memory (benchmarks compare with memory-mapping)
            self.low, self.gt = np.array(self.low), np.array(self.gt)
        self.batch_size, self.seed, self.aug = batch_size, seed, aug
        self.first_step, self.n = first_step, max(0, last_step - first_step + 1)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        step = self.first_step + i
        rng = np.random.default_rng([self.seed, step])
        idx = rng.integers(0, len(self.low), self.batch_size)
        low = torch.from_numpy(np.ascontiguousarray(self.low[idx]))
        gt = torch.from_numpy(np.ascontiguousarray(self.gt[idx]))
        if self.aug:
            low, gt = augment_pair(low, gt, torch.from_numpy(rng.integers(0, 8, self.batch_size)))
        return low, gt
