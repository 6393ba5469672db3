"""Adapter: rule figure_learning_curves -> fmdenoise.figures.learning_curves."""

from fmdenoise.figures import learning_curves
from fmdenoise.logs import log_to

with log_to(snakemake.log[0]):
    learning_curves(snakemake.input, snakemake.output[0])
