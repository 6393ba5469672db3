"""Adapter: rule table_validation -> fmdenoise.evaluate.tables (hyperparameters, studies)."""

from pathlib import Path

from fmdenoise.evaluate.tables import hyperparameter_table, study_table, write_plain_table
from fmdenoise.logs import log_to

CAPTIONS = {
    "hyperparameters": "Validation PSNR of every loss x learning rate; the selected cell marked "
    "with the dataset whose sweep selected it.",
    "scratch": "Validation PSNR/SSIM, pretrained vs scratch initialisation, at matched steps.",
    "augmentation": "Validation PSNR/SSIM, no augmentation vs D4 rotations/flips, matched steps.",
}

with log_to(snakemake.log[0], snakemake):
    name = snakemake.wildcards.table
    if name == "hyperparameters":
        table = hyperparameter_table(snakemake.input.selected)
    else:
        table = study_table(snakemake.input.studies, name)
    write_plain_table(table, Path(snakemake.output[0]).with_suffix(""), CAPTIONS[name])
