"""Adapter: rule table_search -> fmdenoise.evaluate.search_table."""

from pathlib import Path

from fmdenoise.evaluate.search_table import search_tables, write_search_tables
from fmdenoise.logs import log_to

with log_to(snakemake.log[0], snakemake):
    cells, spend = search_tables(
        snakemake.input.promotions, snakemake.input.selected, snakemake.params.steps
    )
    write_search_tables(cells, spend, Path(snakemake.output.csv).with_suffix(""))
