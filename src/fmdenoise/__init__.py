"""fmdenoise: fine-tuning natural-image Gaussian denoisers on paired fluorescence microscopy data.

The library behind the Snakemake workflow, one subpackage per stage of the DAG (the same
stages as ``rules/*.smk``), each importable and testable without Snakemake:

- :mod:`fmdenoise.data`      download, extract, ingest/split, patches (``rules/data.smk``)
- :mod:`fmdenoise.models`    DRUNet, Restormer, KBNet, CARE U-Net; registry; checkpoints
  (``rules/pretrained.smk``)
- :mod:`fmdenoise.train`     the resumable training loop, losses, batches, demo pretraining,
  selection on validation (``rules/train.smk``, ``rules/pretrained.smk``)
- :mod:`fmdenoise.evaluate`  test-set inference, metrics, statistics, tables, figures
  (``rules/evaluate.smk``, ``rules/figures.smk``)
- :mod:`fmdenoise.deploy`    ``fmdenoise denoise`` on a user's TIFFs and ``fmdenoise export`` to
  bioimage.io (command line only; no rule)

Shared by every stage: :mod:`~fmdenoise.config`, :mod:`~fmdenoise.io`, :mod:`~fmdenoise.logs`,
:mod:`~fmdenoise.errors`, :mod:`~fmdenoise.device` and the command line, :mod:`~fmdenoise.cli`.
"""

import os

__version__ = "0.1.0"


def _prefer_huge_pages() -> None:
    """Ask torch for transparent huge pages on its large CPU buffers (``THP_MEM_ALLOC_ENABLE``,
    torch >= 2.4: ``madvise(MADV_HUGEPAGE)`` on buffers of 2 MB and more) unless the user set
    the variable. Without it, full-size CPU inference spends about half of its CPU time in the
    kernel faulting in the pages of every freshly mapped tensor; with it, 0.70x the time for
    6 % more peak memory (``benchmarks/cpu_allocator.py``). torch reads the variable once, at
    its first allocation, so it is set here, before any module of this package imports torch;
    ``THP_MEM_ALLOC_ENABLE=0`` turns it off. Numbers are unchanged (only where pages come from)."""
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")


_prefer_huge_pages()
