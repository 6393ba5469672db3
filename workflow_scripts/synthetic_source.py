"""Adapter: rule synthetic_source -> fmdenoise.data.synthetic.write_source_archive."""

from fmdenoise.data.synthetic import write_source_archive
from fmdenoise.logs import log_to

with log_to(snakemake.log[0], snakemake):
    write_source_archive(snakemake.params.cfg, snakemake.output[0])
