"""The ``fmdenoise`` console command.

Subcommands:

- ``fmdenoise check-config FILE``: validate a study config (schema and cross-key rules) and
  print it with every default filled in.
- ``fmdenoise fetch URL DEST [--sha256 HEX]``: the workflow's verified, resumable download,
  for fetching a file by hand.
- ``fmdenoise denoise MODEL INPUT... -o OUTDIR``: denoise your own TIFFs
  (:mod:`fmdenoise.deploy.denoise`).
- ``fmdenoise inspect-source DIR [--config CONFIG]``: what an extracted archive holds and what
  each dataset's globs find there (:mod:`fmdenoise.data.inspect`).
- ``fmdenoise plan [CONFIG] [--json]``: what a study costs before it runs
  (:mod:`fmdenoise.plan.report`); ``fmdenoise calibrate`` measures this machine for it.
- ``fmdenoise export MODEL OUT.zip``: a BioImage Model Zoo package (:mod:`fmdenoise.deploy.export`).

Every error is one line ``fmdenoise: error: ...`` on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

import yaml

from fmdenoise import __version__
from fmdenoise.config import load_config, load_settings
from fmdenoise.data.download import DownloadSpec, fetch
from fmdenoise.errors import FmdenoiseError
from fmdenoise.process import prefer_huge_pages


def _add_arch(parser: argparse.ArgumentParser) -> None:
    """``--arch``: the architecture of a published checkpoint (its published configuration)."""
    parser.add_argument(
        # the keys of deploy.model_source.PUBLISHED_FORMAT, spelled out: no torch at start-up
        "--arch",
        choices=["drunet", "restormer", "kbnet"],
        help="architecture of a published .pth",
    )


MODEL_HELP = (
    "a run folder (results/<study>/runs/.../seed0), a selection file "
    "(results/<study>/selected/<model>/<dataset>.json), a project checkpoint (.pt), or a "
    "published checkpoint (.pth) together with --arch"
)


def _add_denoise(sub: Any) -> None:
    """The ``denoise`` subcommand's arguments."""
    den = sub.add_parser(
        "denoise",
        help="denoise your own TIFF images with a trained or published model",
        description="Denoise 2D TIFF images and 3D stacks (plane by plane) with tiled inference. "
        "Writes float32 TIFFs under the input file names in OUTDIR, keeping ImageJ/OME pixel "
        "sizes and resolution tags. Inputs are never overwritten.",
    )
    den.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    den.add_argument("inputs", metavar="INPUT", nargs="+", help="TIFF files or folders of them")
    den.add_argument("-o", "--output", metavar="OUTDIR", required=True, help="output folder")
    _add_arch(den)
    den.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda"],
        default="auto",
        help="auto: CUDA if available (default)",
    )
    den.add_argument(
        "--tile",
        type=int,
        default=None,
        help="tile side in pixels; 0 = whole image at once (default: as the study evaluated "
        "the model; 512 for a model with no record)",
    )
    den.add_argument(
        "--overlap", type=int, default=None, help="tile overlap in pixels (default: as evaluated)"
    )
    den.add_argument(
        "--low-percentile",
        type=float,
        default=None,
        help="input normalisation (default: as in training and evaluation, 0.1 without a record)",
    )
    den.add_argument(
        "--high-percentile",
        type=float,
        default=None,
        help="input normalisation (default: as in training and evaluation, 99.9 without a record)",
    )
    den.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    den.add_argument("--no-progress", action="store_true", help="no progress bar")
    den.set_defaults(func=_denoise)


def _add_export(sub: Any) -> None:
    """The ``export`` subcommand's arguments."""
    exp = sub.add_parser(
        "export",
        help="export a model as a BioImage Model Zoo (bioimage.io) package",
        description="Write a bioimage.io model package (.zip): TorchScript weights, a test "
        "input/output pair, percentile normalisation as preprocessing, validated with "
        "bioimageio.spec before it is written.",
    )
    exp.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    exp.add_argument("output", metavar="OUT.zip", help="package to write")
    _add_arch(exp)
    exp.add_argument("--name", default=None, help="model name in the package")
    exp.add_argument("--author", default="fmdenoise user", help="author name in the package")
    exp.add_argument(
        "--test-image",
        default=None,
        help="2D TIFF whose centre crop becomes the test input (default: synthetic)",
    )
    exp.set_defaults(func=_export)


def _check_config(args: argparse.Namespace) -> None:
    print(yaml.safe_dump(load_config(args.config), sort_keys=False), end="")


def _fetch(args: argparse.Namespace) -> None:
    print(fetch(DownloadSpec(args.url, args.sha256), args.dest))


def _denoise(args: argparse.Namespace) -> None:
    from fmdenoise.deploy.denoise import RECORDED, denoise_files

    def given(value: Any) -> Any:
        return RECORDED if value is None else value

    for out in denoise_files(
        args.model,
        args.inputs,
        args.output,
        arch=args.arch,
        device=args.device,
        tile=RECORDED if args.tile is None else (args.tile or None),
        overlap=given(args.overlap),
        low=given(args.low_percentile),
        high=given(args.high_percentile),
        overwrite=args.overwrite,
        progress=not args.no_progress,
    ):
        print(out)


def _export(args: argparse.Namespace) -> None:
    from fmdenoise.deploy.export import export_bioimageio

    print(
        export_bioimageio(
            args.model,
            args.output,
            arch=args.arch,
            name=args.name,
            author=args.author,
            test_image=args.test_image,
        )
    )


def _inspect_source(args: argparse.Namespace) -> None:
    from fmdenoise.data.inspect import format_report, inspect_source

    config = load_config(args.config) if args.config else None
    print(format_report(inspect_source(args.source, config, args.dataset or None)))


def _plan(args: argparse.Namespace) -> None:
    import json

    from fmdenoise.costs.calibration import Calibration
    from fmdenoise.plan.report import format_plan, make_plan
    from fmdenoise.plan.site import partition_limits, partition_nodes, queue_limits
    from fmdenoise.plan.source_sizes import listed_bytes

    settings = load_settings(args.config)
    path = args.calibration or settings.planning.calibration
    partitions = partition_limits() if args.sinfo else None
    queue = queue_limits(settings.config) if args.sinfo and partitions is not None else None
    nodes = partition_nodes() if args.sinfo and partitions is not None else None
    listed = None if args.offline else listed_bytes(settings.config)
    plan = make_plan(
        settings,
        Calibration.load(path),
        workdir=args.workdir,
        partitions=partitions,
        queue=queue,
        nodes=nodes,
        listed=listed,
    )
    if args.progress:
        from pathlib import Path

        from fmdenoise.plan.progress import follow, format_progress

        followed = follow(plan, Path(args.workdir) / settings.results)
        print(json.dumps(followed, indent=1) if args.json else format_progress(followed), end="")
        return
    print(json.dumps(plan, indent=1) if args.json else format_plan(plan))


def _calibrate(args: argparse.Namespace) -> None:
    from fmdenoise.plan.calibrate import calibrate_table

    progress = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    print(calibrate_table(args.device, args.output, args.append, args.budget, progress))


def _rehearse(args: argparse.Namespace) -> None:
    from pathlib import Path

    from fmdenoise.costs.calibration import shipped_table
    from fmdenoise.plan import rehearsal

    config = load_config(args.config)
    if args.reduced:
        opts = rehearsal.reduced_options()
        opts.overrides = [*opts.overrides, *(args.set or ())]
    else:
        opts = rehearsal.Options(
            datasets=args.datasets.split(",") if args.datasets else None,
            scale=args.scale,
            pair_scale=args.pair_scale,
            steps=args.steps,
            cpu_batch=None if args.keep_batch else rehearsal.CPU_BATCH,
            overrides=args.set or (),
        )
    run_args = ["--profile", args.profile] if args.profile else ["--cores", str(args.cores)]
    run_args += args.snakemake_arg or []
    if not args.profile:  # jobs run here: whole-image models are tiled to fit this machine
        opts.mem_mb = rehearsal.machine_mem_mb()
    if args.calibration:  # price with this table as it is
        table = Path(args.calibration).resolve()
        opts.overrides = [*opts.overrides, f"planning.calibration={table}"]
    else:  # on CPU: with this machine's inference rates, measured first
        opts.calibrate_here = True
    workdir = Path(args.workdir)
    cfg_path, _log = rehearsal.run(config, workdir, opts, run_args, site_check=bool(args.profile))
    settings = load_settings(cfg_path)
    base = Path(settings.planning.calibration or shipped_table())
    out = rehearsal.write_report(workdir, settings, base)
    print((out / "rehearsal_summary.md").read_text())
    print(f"per job: {out / 'rehearsal.csv'}; calibration: {out / 'calibration.csv'}")


def _efficiency(args: argparse.Namespace) -> None:
    from pathlib import Path

    from fmdenoise.costs.calibration import shipped_table
    from fmdenoise.plan.usage import write_efficiency

    settings = load_settings(args.config)
    base = Path(args.calibration or settings.planning.calibration or shipped_table())
    out = write_efficiency(args.workdir, settings, base)
    print((out / "efficiency_summary.md").read_text())
    print(f"per job: {out / 'efficiency.csv'}; calibration: {out / 'calibration.csv'}")


def _add_efficiency(sub: Any) -> None:
    eff = sub.add_parser(
        "efficiency",
        help="after a run: each job's measured time and memory against its request",
        description="Reads Snakemake's logs and benchmark files in WORKDIR (any executor, no "
        "sacct needed) and writes efficiency.csv, efficiency_summary.md and calibration.csv "
        "(this run's measured rates) into the study's results folder.",
    )
    eff.add_argument("config", help="the study config the run used")
    eff.add_argument("--workdir", default=".", help="where the run's .snakemake/ and results are")
    eff.add_argument("--calibration", default=None, help="table to start from (default: shipped)")
    eff.set_defaults(func=_efficiency)


def _add_plan(sub: Any) -> None:
    """The ``plan`` and ``calibrate`` subcommands' arguments."""
    plan = sub.add_parser(
        "plan",
        help="price a study before submitting it: jobs, GPU/CPU-hours, memory, disk",
        description="Per rule: jobs, SLURM submissions, GPU-hours, CPU-hours, the longest job "
        "against its runtime request, the largest memory need against its request; disk per "
        "stage. Costs come from the calibration table; GPU figures that were not measured are "
        "estimated from FLOP counts and marked ESTIMATE.",
    )
    plan.add_argument("config", nargs="?", default="config.yaml", help="study config")
    plan.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    plan.add_argument("--calibration", default=None, help="calibration table (CSV)")
    plan.add_argument(
        "--workdir", default=".", help="where results/ lives (measured sizes once ingested)"
    )
    plan.add_argument(
        "--no-sinfo",
        dest="sinfo",
        action="store_false",
        help="do not ask SLURM (sinfo, scontrol, sacctmgr) for the partitions' time limits and "
        "the queue limits (asked when SLURM is there)",
    )
    plan.add_argument(
        "--progress",
        action="store_true",
        help="during the run: the plan marked with the jobs finished, running, failed and lost "
        "under --workdir, GPU-hours spent against planned and left at the measured pace",
    )
    plan.add_argument(
        "--offline",
        action="store_true",
        help="do not list the folder sources (hagen_url): download sizes from the expected "
        "sizes (listed when the site answers)",
    )
    plan.set_defaults(func=_plan)
    cal = sub.add_parser(
        "calibrate",
        help="measure this machine for the calibration table (minutes)",
        description="Full-size training steps, inference s/Mpx per model and BM3D, and the data "
        "rules' s/Mpx on this machine's DEVICE, each in its own process.",
    )
    cal.add_argument(
        "--device", choices=["cpu", "cuda"], default="cpu", help="the device to measure"
    )
    cal.add_argument("-o", "--output", default=None, help="CSV to write (default: shipped table)")
    cal.add_argument("--append", default=None, help="keep this table's rows of other device types")
    cal.add_argument(
        "--budget",
        type=float,
        default=None,
        metavar="SECONDS",
        help="stop starting measurements after SECONDS, skip any that fail or overrun, and keep "
        "the rows measured (the table is rewritten after each measurement); CUDA measures the "
        "study's default variants first",
    )
    cal.set_defaults(func=_calibrate)
    reh = sub.add_parser(
        "rehearse",
        help="run the study end to end on synthetic data of its real shape (local HTTP server)",
        description="Render a source shaped like the real archives (the config's datasets and "
        "expected sizes x --scale), serve it and random full-size official checkpoints from "
        "127.0.0.1, run the config unchanged but for those URLs, a short step budget and "
        "--set overrides, then report every job's measured time, memory and bytes against its "
        "request. On CPU the training batch is cut to 2 unless --keep-batch, and the jobs are "
        "priced with this machine's inference rates, measured first (unless --calibration).",
    )
    reh.add_argument("config", nargs="?", default="config.yaml", help="study config to rehearse")
    reh.add_argument(
        "--reduced",
        action="store_true",
        help="the CI-size rehearsal (one 512x512 dataset, one cell, batch 1; docs/real-study.md)",
    )
    reh.add_argument("--datasets", default=None, help="comma-separated subset (default: all)")
    reh.add_argument("--scale", type=float, default=1.0, help="image sides x SCALE")
    reh.add_argument("--pair-scale", type=float, default=None, help="pairs x this (default SCALE)")
    reh.add_argument("--steps", type=int, default=2, help="training steps per run (default 2)")
    reh.add_argument("--cores", type=int, default=2, help="snakemake --cores (local runs)")
    reh.add_argument("--profile", default=None, help="e.g. profiles/slurm (instead of --cores)")
    reh.add_argument("--set", action="append", metavar="KEY=VALUE", help="config override")
    reh.add_argument("--keep-batch", action="store_true", help="keep the config's batch size")
    reh.add_argument(
        "--snakemake-arg",
        action="append",
        metavar="ARG",
        help="passed on to snakemake (repeat; e.g. --snakemake-arg=--slurm-no-account)",
    )
    reh.add_argument("--workdir", default=".", help="where results/rehearsal is written")
    reh.add_argument(
        "--calibration",
        default=None,
        help="price the jobs with this table as it is (default on CPU: measure this machine's "
        "inference rates first, ~3 min, and use them)",
    )
    reh.set_defaults(func=_rehearse)


def _add_inspect_source(sub: Any) -> None:
    """The ``inspect-source`` subcommand's arguments."""
    ins = sub.add_parser(
        "inspect-source",
        help="what a source (a URL of the site, or a folder) holds and what the globs find",
        description="List the files under SOURCE (a remote folder's URL, read from its index "
        "pages, e.g. the hagen_url of config.yaml; or a local folder: a copy of the site, an "
        "extracted archive) with sizes, every TIFF's pages, image shape and dtype read from "
        "its header (HTTP byte ranges: nothing is downloaded whole), and, with --config, "
        "what each dataset's globs match there (train/test, noisy/ground truth, provided "
        "outputs), whether they pair, whether the test side comes from the source or from "
        "split.test_fraction, and which files no glob claims. Run it first against the real "
        "site, and whenever ingest fails; then edit the globs of the config.",
    )
    ins.add_argument(
        "source", metavar="SOURCE", help="URL of a folder (http(s), file:) or a local folder"
    )
    ins.add_argument("--config", default=None, help="study config whose globs to try")
    ins.add_argument(
        "--dataset", action="append", help="only this dataset (repeatable; default: all)"
    )
    ins.set_defaults(func=_inspect_source)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fmdenoise",
        description="Fine-tuning natural-image denoisers on fluorescence microscopy data. "
        "The study itself runs with snakemake (see README.md and docs/).",
    )
    parser.add_argument("--version", action="version", version=f"fmdenoise {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check-config", help="validate a config and print it with defaults")
    check.add_argument("config", help="YAML config file (e.g. config.yaml, demo/config.yaml)")
    check.set_defaults(func=_check_config)
    get = sub.add_parser("fetch", help="download a file with resume and sha256 verification")
    get.add_argument("url", help="http(s) or file: URL of the file")
    get.add_argument("dest", help="where the verified file is written")
    get.add_argument("--sha256", default=None, help="expected sha256 (omit to print it)")
    get.set_defaults(func=_fetch)
    _add_inspect_source(sub)
    _add_plan(sub)
    _add_efficiency(sub)
    _add_denoise(sub)
    _add_export(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    prefer_huge_pages()  # before any subcommand allocates a tensor
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        args.func(args)
    except FmdenoiseError as exc:
        print(f"fmdenoise: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
