"""Adapter: checkpoint select -> fmdenoise.train.selection.select_cell (validation results only)."""

from fmdenoise.io import write_json
from fmdenoise.logs import log_to
from fmdenoise.train.selection import select_cell

with log_to(snakemake.log[0]):
    write_json(snakemake.output[0], select_cell(snakemake.input.runs, snakemake.input.promotions))
