"""Adapter: rule table_cost -> fmdenoise.tables.cost_table / write_cost_table."""

from pathlib import Path

from fmdenoise.logs import log_to
from fmdenoise.tables import cost_table, write_cost_table

with log_to(snakemake.log[0]):
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
