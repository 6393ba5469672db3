"""Adapter: rule table_cost -> fmdenoise.evaluate.tables.cost_table / write_cost_table."""

from pathlib import Path

from fmdenoise.evaluate.tables import cost_table, write_cost_table
from fmdenoise.logs import log_to

with log_to(snakemake.log[0], snakemake):
    timing = {
        (Path(d).parent.name, Path(d).name): Path(d) / "timing.json"
        for d in snakemake.input.predictions  # predictions/<method>/<dataset>
    }
    selected = {(Path(f).parent.name, Path(f).stem): f for f in snakemake.input.selected}
    write_cost_table(
        cost_table(timing, selected),
        Path(snakemake.output.csv).with_suffix(""),
        "Cost: parameters, training time (selected run and whole loss x lr sweep) and "
        "inference time per megapixel.",
    )
