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
:mod:`~fmdenoise.errors`, :mod:`~fmdenoise.device`, :mod:`~fmdenoise.study` (the study's
structure asked of the config), :mod:`~fmdenoise.process` (what each entry point sets up) and
the command line, :mod:`~fmdenoise.cli`.
"""

__version__ = "0.1.0"
