"""Adapter: rule studies -> fmdenoise.train.selection.summarize_runs (the study runs' summaries)."""

from fmdenoise.io import write_json
from fmdenoise.logs import log_to
from fmdenoise.train.selection import summarize_runs

with log_to(snakemake.log[0], snakemake):
    write_json(snakemake.output[0], summarize_runs(snakemake.input))
