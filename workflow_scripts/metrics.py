"""Adapter: rule metrics -> fmdenoise.metrics.evaluate_dataset."""

from fmdenoise.io import write_text
from fmdenoise.logs import log_to
from fmdenoise.metrics import evaluate_dataset

with log_to(snakemake.log[0]):
    norm = snakemake.params.normalization
    table = evaluate_dataset(
        snakemake.input.data,
        snakemake.input.predictions,
        norm["low_percentile"],
        norm["high_percentile"],
    )
    write_text(snakemake.output[0], table.to_csv(index=False))
