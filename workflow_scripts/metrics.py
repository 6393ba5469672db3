"""Adapter: rule metrics -> fmdenoise.evaluate.metrics.evaluate_dataset."""

from fmdenoise.evaluate.metrics import evaluate_dataset
from fmdenoise.io import write_text
from fmdenoise.logs import log_to

with log_to(snakemake.log[0], snakemake):
    norm = snakemake.params.normalization
    table = evaluate_dataset(
        snakemake.input.data,
        snakemake.input.predictions,
        norm["low_percentile"],
        norm["high_percentile"],
    )
    write_text(snakemake.output[0], table.to_csv(index=False))
