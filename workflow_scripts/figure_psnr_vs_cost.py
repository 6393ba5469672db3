"""Adapter: rule figure_psnr_vs_cost -> fmdenoise.evaluate.figures.psnr_vs_cost."""

from fmdenoise.evaluate.figures import psnr_vs_cost
from fmdenoise.logs import log_to

with log_to(snakemake.log[0], snakemake):
    psnr_vs_cost(snakemake.input.main, snakemake.input.cost, snakemake.output[0])
