"""The ``fmdenoise`` console command.

Subcommands:

- ``fmdenoise check-config FILE``: validate a study config (schema and cross-key rules) and
  print it with every default filled in.
- ``fmdenoise fetch URL DEST [--sha256 HEX]``: the workflow's verified, resumable download,
  for fetching a file by hand.
"""

from __future__ import annotations

import argparse
import logging
import sys

import yaml

from fmdenoise import __version__
from fmdenoise.config import load_config
from fmdenoise.download import DownloadSpec, fetch
from fmdenoise.errors import FmdenoiseError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fmdenoise",
        description="Fine-tuning natural-image denoisers on fluorescence microscopy data. "
        "The study itself runs with snakemake (see README.md).",
    )
    parser.add_argument("--version", action="version", version=f"fmdenoise {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check-config", help="validate a config and print it with defaults")
    check.add_argument("config", help="YAML config file (e.g. config.yaml, demo/config.yaml)")
    get = sub.add_parser("fetch", help="download a file with resume and sha256 verification")
    get.add_argument("url")
    get.add_argument("dest", help="where the verified file is written")
    get.add_argument("--sha256", default=None, help="expected sha256 (omit to print it)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        if args.command == "check-config":
            config = load_config(args.config)
            print(yaml.safe_dump(config, sort_keys=False), end="")
        elif args.command == "fetch":
            print(fetch(DownloadSpec(args.url, args.sha256), args.dest))
    except FmdenoiseError as exc:
        print(f"fmdenoise: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
