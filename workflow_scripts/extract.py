"""Adapter: rule extract -> fmdenoise.data.download.extract."""

from fmdenoise.data.download import extract
from fmdenoise.logs import log_to

with log_to(snakemake.log[0], snakemake):
    extract(snakemake.input[0], snakemake.output[0])
