"""Adapter: rule figure_transfer -> fmdenoise.evaluate.figures.transfer_heatmap."""

from fmdenoise.evaluate.figures import transfer_heatmap
from fmdenoise.logs import log_to

with log_to(snakemake.log[0], snakemake):
    transfer_heatmap(snakemake.input[0], snakemake.output[0])
