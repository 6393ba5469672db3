"""Adapter: rule patches -> fmdenoise.patches.build_patches."""

from pathlib import Path

from fmdenoise.logs import log_to
from fmdenoise.patches import build_patches

with log_to(snakemake.log[0]):
    out_dir = Path(snakemake.output.info).parent
    build_patches(
        snakemake.input[0], out_dir, snakemake.params.patches, snakemake.params.normalization
    )
