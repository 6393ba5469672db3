"""Adapter: rule ingest -> fmdenoise.data.ingest.ingest_dataset."""

from fmdenoise.data.ingest import ingest_dataset
from fmdenoise.logs import log_to

with log_to(snakemake.log[0]) as log:
    manifest = ingest_dataset(
        snakemake.input[0],
        snakemake.params.dataset,
        snakemake.output[0],
        val_fraction=snakemake.params.split["val_fraction"],
        seed=snakemake.params.split["seed"],
    )
    log.info("ingested %s", manifest.groupby(["split", "role"]).size().to_dict())
