"""Adapter: rule train -> fmdenoise.train.loop.train (resumes from last.pt in the run folder,
or a halving search's last rung state). How the study applies the model is recorded from the
config, not from params: changing the evaluation's tiling must not retrain (the selection file
records it as the evaluation runs it)."""

from pathlib import Path

from fmdenoise.logs import log_to
from fmdenoise.settings import ModelSettings, StudySettings, TrainingSettings
from fmdenoise.study import inference_settings
from fmdenoise.train.compile import use_cache
from fmdenoise.train.loop import train
from fmdenoise.train.setup import Cell

with log_to(snakemake.log[0], snakemake):
    config = StudySettings.from_config(snakemake.config)  # not params: these rerun nothing
    use_cache(config.compile_cache)  # training.compile
    train(
        Cell(**snakemake.params.cell),
        ModelSettings.from_dict(snakemake.params.model),
        TrainingSettings.from_dict(snakemake.params.training),
        Path(snakemake.input.patches[0]).parent,
        Path(snakemake.output.run).parent,
        pretrained=snakemake.input.get("pretrained"),
        threads=snakemake.threads,
        checkpoint_minutes=config.checkpoint_minutes,
        start_from=snakemake.input.get("start_from"),
        inference=inference_settings(config, snakemake.wildcards.model),
    )
