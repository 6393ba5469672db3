"""Adapter: rule transfer_predict -> fmdenoise.evaluate.transfer.predict_transfer."""

from fmdenoise.device import threads
from fmdenoise.evaluate.transfer import predict_transfer
from fmdenoise.logs import log_to
from fmdenoise.settings import NormalizationSettings

with log_to(snakemake.log[0], snakemake), threads(snakemake.threads):
    predict_transfer(
        {**snakemake.params.method, "checkpoint": snakemake.input.checkpoint},
        dict(zip(snakemake.params.targets, snakemake.input.data, strict=True)),
        snakemake.output[0],
        NormalizationSettings.from_dict(snakemake.params.normalization),
        tile=snakemake.params.tile,
        overlap=snakemake.params.overlap,
    )
