"""fmdenoise: fine-tuning natural-image Gaussian denoisers on paired fluorescence microscopy data.

The library behind the Snakemake workflow. Every stage of the study is a function here,
importable and testable without Snakemake:

- :mod:`fmdenoise.config`   load and validate the study configuration (JSON schema)
- :mod:`fmdenoise.download` verified, resumable downloads and safe archive extraction
- :mod:`fmdenoise.ingest`   map a source layout into paired float32 TIFFs and splits
- :mod:`fmdenoise.patches`  CARE-style patch extraction into memory-mappable arrays
- :mod:`fmdenoise.normalize` the percentile normalisation shared by patches and inference
- :mod:`fmdenoise.synthetic` the embedded demo study's synthetic Hagen-like source
- :mod:`fmdenoise.models`   DRUNet, Restormer, KBNet, CARE U-Net; checkpoints; wrapper
- :mod:`fmdenoise.pretrain` demo pretraining of small models on natural images
"""

__version__ = "0.1.0"
