"""Adapter: rule table_transfer -> fmdenoise.evaluate.transfer."""

from pathlib import Path

from fmdenoise.evaluate.transfer import transfer_table, write_transfer_table
from fmdenoise.logs import log_to

with log_to(snakemake.log[0], snakemake):
    transfer = {(Path(f).parent.name, Path(f).stem): f for f in snakemake.input.transfer}
    metrics = {(Path(f).parent.name, Path(f).stem): f for f in snakemake.input.metrics}
    table = transfer_table(transfer, metrics, snakemake.params.finetuned)
    write_transfer_table(table, Path(snakemake.output.csv).with_suffix(""))
