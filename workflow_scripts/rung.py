"""Adapter: rule rung -> fmdenoise.train.loop.train_rung (one rung of a halving search)."""

from pathlib import Path

from fmdenoise.logs import log_to
from fmdenoise.settings import ModelSettings, StudySettings, TrainingSettings
from fmdenoise.train.compile import use_cache
from fmdenoise.train.loop import train_rung
from fmdenoise.train.setup import Cell

with log_to(snakemake.log[0], snakemake):
    config = StudySettings.from_config(snakemake.config)  # not params: these rerun nothing
    use_cache(config.compile_cache)  # training.compile
    train_rung(
        Cell(**snakemake.params.cell),
        ModelSettings.from_dict(snakemake.params.model),
        TrainingSettings.from_dict(snakemake.params.training),
        Path(snakemake.input.patches[0]).parent,
        Path(snakemake.output.summary).parent,
        rung=int(snakemake.wildcards.rung),
        budget=snakemake.params.budget,
        state_out=snakemake.output.state,
        summary_out=snakemake.output.summary,
        start_from=snakemake.input.get("start_from"),
        pretrained=snakemake.input.get("pretrained"),
        threads=snakemake.threads,
        checkpoint_minutes=config.checkpoint_minutes,
    )
