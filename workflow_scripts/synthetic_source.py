"""Adapter: rule synthetic_source -> fmdenoise.synthetic.write_source_archive."""

from fmdenoise.logs import log_to
from fmdenoise.synthetic import write_source_archive

with log_to(snakemake.log[0]):
    write_source_archive(snakemake.params.cfg, snakemake.output[0])
