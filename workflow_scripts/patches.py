"""Adapter: rule patches -> fmdenoise.data.patches.build_patches."""

from pathlib import Path

from fmdenoise.data.patches import build_patches
from fmdenoise.logs import log_to

with log_to(snakemake.log[0], snakemake):
    out_dir = Path(snakemake.output.info).parent
    build_patches(
        snakemake.input[0], out_dir, snakemake.params.patches, snakemake.params.normalization
    )
