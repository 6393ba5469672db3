"""Adapter: checkpoint promote -> fmdenoise.train.search.promotion (validation results only)."""

from fmdenoise.io import write_json
from fmdenoise.logs import log_to
from fmdenoise.train.search import promotion

with log_to(snakemake.log[0]):
    write_json(
        snakemake.output[0],
        promotion(
            int(snakemake.wildcards.rung),
            snakemake.params.budget,
            snakemake.input,
            snakemake.params.eta,
            [tuple(c) for c in snakemake.params.order],
        ),
    )
