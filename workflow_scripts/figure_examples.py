"""Adapter: rule figure_examples -> fmdenoise.evaluate.figures.example_crops."""

from pathlib import Path

from fmdenoise.evaluate.figures import example_crops
from fmdenoise.logs import log_to

with log_to(snakemake.log[0], snakemake):
    predictions = {Path(d).parent.name: d for d in snakemake.input.predictions}
    example_crops(snakemake.input.data, predictions, snakemake.output[0], snakemake.params.crop)
