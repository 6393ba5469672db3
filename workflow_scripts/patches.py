"""Adapter: rule patches -> fmdenoise.data.patches.build_patches."""

from pathlib import Path

from fmdenoise.data.patches import build_patches
from fmdenoise.logs import log_to
from fmdenoise.settings import NormalizationSettings, PatchSettings

with log_to(snakemake.log[0], snakemake):
    out_dir = Path(snakemake.output.info).parent
    build_patches(
        snakemake.input[0],
        out_dir,
        PatchSettings.from_dict(snakemake.params.patches),
        NormalizationSettings.from_dict(snakemake.params.normalization),
    )
