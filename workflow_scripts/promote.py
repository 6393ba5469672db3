"""Adapter: checkpoint promote -> fmdenoise.train.search.promotion (validation results only),
then the states of the cells not promoted are dropped."""

from fmdenoise.io import write_json
from fmdenoise.logs import log_to
from fmdenoise.train.search import drop_unpromoted_states, promotion

with log_to(snakemake.log[0], snakemake):
    decided = promotion(
        int(snakemake.wildcards.rung),
        snakemake.params.budget,
        snakemake.input,
        snakemake.params.eta,
        [tuple(c) for c in snakemake.params.order],
        snakemake.params.stratify,
    )
    write_json(snakemake.output[0], decided)
    drop_unpromoted_states(decided)
