"""Adapter: rule predict -> fmdenoise.evaluate.predict.predict_dataset."""

from fmdenoise.device import threads
from fmdenoise.evaluate.predict import predict_dataset
from fmdenoise.logs import log_to
from fmdenoise.settings import NormalizationSettings

with log_to(snakemake.log[0], snakemake), threads(snakemake.threads):
    method = dict(snakemake.params.method)
    if snakemake.input.get("checkpoint"):  # a network's weights (fmdenoise.study.METHOD_KINDS)
        method["checkpoint"] = snakemake.input.checkpoint
    predict_dataset(
        method,
        snakemake.input.data,
        snakemake.output[0],
        NormalizationSettings.from_dict(snakemake.params.normalization),
        tile=snakemake.params.tile,
        overlap=snakemake.params.overlap,
        workers=snakemake.threads,
    )
