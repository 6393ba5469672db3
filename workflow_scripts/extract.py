"""Adapter: rule extract -> fmdenoise.data.download.extract."""

from fmdenoise.data.download import extract
from fmdenoise.logs import log_to

with log_to(snakemake.log[0]):
    extract(snakemake.input[0], snakemake.output[0])
