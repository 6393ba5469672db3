"""Adapter: checkpoint select -> fmdenoise.train.selection.select_cell (validation results only;
on a dataset outside grid.sweep_datasets the file names the dataset the cell was selected on)."""

from fmdenoise.io import write_json
from fmdenoise.logs import log_to
from fmdenoise.settings import StudySettings
from fmdenoise.study import transfer_source
from fmdenoise.train.selection import drop_unselected_weights, select_cell

with log_to(snakemake.log[0], snakemake):
    selection = select_cell(
        snakemake.input.runs,
        snakemake.input.promotions,
        transfer_from=transfer_source(
            StudySettings.from_config(snakemake.config), snakemake.wildcards.dataset
        ),
        inference=snakemake.params.inference,
    )
    write_json(snakemake.output[0], selection)
    if snakemake.params.keep_weights == "selected":
        drop_unselected_weights(selection)
