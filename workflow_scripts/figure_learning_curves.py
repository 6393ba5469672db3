"""Adapter: rule figure_learning_curves -> fmdenoise.evaluate.figures.learning_curves."""

from fmdenoise.evaluate.figures import learning_curves
from fmdenoise.logs import log_to

with log_to(snakemake.log[0], snakemake):
    learning_curves(snakemake.input, snakemake.output[0])
