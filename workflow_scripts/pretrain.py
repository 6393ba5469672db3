"""Adapter: rule pretrain -> fmdenoise.train.pretrain.pretrain, saved in the project format."""

from fmdenoise.device import threads
from fmdenoise.logs import log_to
from fmdenoise.models.checkpoints import save_model
from fmdenoise.settings import PretrainSettings
from fmdenoise.train.pretrain import pretrain, provenance

with log_to(snakemake.log[0], snakemake), threads(snakemake.threads):
    model = snakemake.params.model
    recipe = PretrainSettings.from_dict(snakemake.params.pretrain)
    net, summary = pretrain(model["arch"], model["kwargs"], recipe)
    save_model(
        snakemake.output[0],
        net,
        model["arch"],
        model["kwargs"],
        source="pretrain",
        pretrain=summary,
        provenance=provenance(recipe, snakemake.threads),
    )
