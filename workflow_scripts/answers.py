"""Adapter: rule answers -> fmdenoise.evaluate.answers.write_answers."""

from pathlib import Path

from fmdenoise.evaluate.answers import write_answers
from fmdenoise.logs import log_to

with log_to(snakemake.log[0], snakemake):
    tables = {Path(f).stem: f for f in snakemake.input.tables}
    metrics = {(Path(f).parent.name, Path(f).stem): f for f in snakemake.input.metrics}
    data = {Path(f).name: f for f in snakemake.input.data}
    write_answers(tables, metrics, snakemake.params.finetuned, snakemake.output[0], data)
