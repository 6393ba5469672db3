"""Adapter: rule fetch_folder -> fmdenoise.data.remote.fetch_dataset_files (+ their sha256)."""

from fmdenoise.config import folder_urls
from fmdenoise.data.ingest import REQUIRED_GLOBS
from fmdenoise.data.remote import fetch_dataset_files, sha256sums
from fmdenoise.io import write_text
from fmdenoise.logs import log_to

with log_to(snakemake.log[0], snakemake):
    folder = snakemake.config["downloads"][snakemake.wildcards.folder]
    fetched = fetch_dataset_files(
        folder_urls(snakemake.config, snakemake.wildcards.folder),
        snakemake.params.globs,
        REQUIRED_GLOBS,
        snakemake.output.files,
        snakemake.params.cache,
        checksums=folder["sha256"],
        manual_dir=snakemake.params.manual_path,
    )
    write_text(snakemake.output.sha256, sha256sums(fetched))
