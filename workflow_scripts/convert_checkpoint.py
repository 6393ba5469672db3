"""Adapter: rule convert_checkpoint -> fmdenoise.models.checkpoints.convert_published."""

from fmdenoise.logs import log_to
from fmdenoise.models.checkpoints import convert_published

with log_to(snakemake.log[0], snakemake):
    model = snakemake.params.model
    convert_published(
        snakemake.input[0],
        snakemake.output[0],
        model["arch"],
        model["kwargs"],
        model["pretrained"]["format"],
    )
