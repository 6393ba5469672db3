"""Adapter: rule transfer -> fmdenoise.evaluate.transfer.score_transfer."""

from fmdenoise.device import threads
from fmdenoise.evaluate.transfer import score_transfer
from fmdenoise.logs import log_to
from fmdenoise.settings import NormalizationSettings

with log_to(snakemake.log[0], snakemake), threads(snakemake.threads):
    score_transfer(
        dict(zip(snakemake.params.targets, snakemake.input.data, strict=True)),
        snakemake.input.predictions,
        snakemake.output[0],
        NormalizationSettings.from_dict(snakemake.params.normalization),
    )
