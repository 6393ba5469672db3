"""Adapter: rule download -> fmdenoise.data.download.fetch (+ the sha256 it verified/recorded)."""

from pathlib import Path

from fmdenoise.data.download import DownloadSpec, fetch
from fmdenoise.io import write_text
from fmdenoise.logs import log_to

with log_to(snakemake.log[0], snakemake):
    spec = DownloadSpec.from_config(snakemake.params.spec)
    digest = fetch(spec, snakemake.output.file, base=Path(snakemake.params.base))
    write_text(snakemake.output.sha256, f"{digest}  {Path(snakemake.output.file).name}\n")
