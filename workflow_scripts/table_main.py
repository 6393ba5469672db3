"""Adapter: rule table_main -> fmdenoise.evaluate.tables.main_table / write_table."""

from pathlib import Path

from fmdenoise.evaluate.tables import main_table, seed_files_by_cell, write_table
from fmdenoise.logs import log_to

with log_to(snakemake.log[0], snakemake):
    metrics = {(Path(f).parent.name, Path(f).stem): f for f in snakemake.input.metrics}
    runs = {}
    for f in snakemake.input.runs:  # results/runs/<model>/<dataset>/.../run.json
        parts = Path(f).parts
        i = parts.index("runs")
        runs[(parts[i + 1], parts[i + 2])] = f
    seeds = seed_files_by_cell(snakemake.input.seeds)
    table = main_table(
        metrics, snakemake.params.finetuned, runs, seed=snakemake.params.seed, seed_files=seeds
    )
    write_table(
        table,
        Path(snakemake.output.csv).with_suffix(""),
        "Test-set PSNR, SSIM and MicroSSIM per dataset and method (fine-tuned models selected "
        "on validation).",
    )
