"""Adapter: rule ingest -> fmdenoise.data.ingest.ingest_dataset."""

from fmdenoise.data.ingest import ingest_dataset
from fmdenoise.logs import log_to
from fmdenoise.settings import SplitSettings

with log_to(snakemake.log[0], snakemake) as log:
    split = SplitSettings.from_dict(snakemake.params.split)
    manifest = ingest_dataset(
        snakemake.input[0],
        snakemake.params.dataset,
        snakemake.output[0],
        val_fraction=split.val_fraction,
        seed=split.seed,
        test_fraction=split.test_fraction,
    )
    log.info("ingested %s", manifest.groupby(["split", "role"]).size().to_dict())
    log.info("split: %s", manifest["split_rule"].iloc[0])
