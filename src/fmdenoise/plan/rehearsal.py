"""The real study rehearsed at real size, before anyone spends GPU-hours on it.

:func:`prepare` renders a synthetic source with the real study's shape (the config's datasets,
pair counts and image sizes, times ``scale``; :mod:`.rehearsal_source`), writes random
full-size weights in the official checkpoint containers, and writes a rehearsal config: the
given config unchanged except the download URLs (a local HTTP server on 127.0.0.1), a short
step budget, the results folder and the ``overrides`` named on the command line. On CPU the
training batch is cut to 2 (full-size Restormer at batch 8 needs more than 24 GB) and the
report says so; a model that predicts whole images (``tile: null``) predicts in the largest
tiles whose request fits the machine when the whole image's does not (:func:`fit_tiles`:
Restormer on a 2048x2048 image asks for ~35 GB on CPU), and the report says that too.
:func:`run` serves the files and runs Snakemake on it, locally or through a profile (SLURM),
and :func:`write_report` writes what every job measured against its request and the
calibration rows for ``fmdenoise plan`` (:mod:`.efficiency`).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import http.server
import os
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from fmdenoise.config import restrict_datasets, validate
from fmdenoise.costs.calibration import Calibration, replace_rows, write_table
from fmdenoise.costs.estimates import CostModel, request
from fmdenoise.costs.sizes import dataset_sizes
from fmdenoise.errors import ConfigError, FmdenoiseError
from fmdenoise.io import write_text
from fmdenoise.plan import efficiency
from fmdenoise.plan.efficiency import NOTES
from fmdenoise.plan.rehearsal_source import (
    scaled_size,
    write_checkpoint,
    write_dataset_archive,
    write_published_dataset,
)
from fmdenoise.plan.report import make_plan
from fmdenoise.plan.site import DEFAULT, partition_limits, partition_nodes, rule_partition
from fmdenoise.settings import StudySettings
from fmdenoise.study import inference_tile, method_kind

CPU_BATCH = 2
#: the calibration table a CPU rehearsal measures here before it runs (in its results folder)
MACHINE_TABLE = "calibration-machine.csv"
#: tiles :func:`fit_tiles` tries are multiples of this
TILE_STEP = 256


@dataclasses.dataclass
class Options:
    """What to rehearse and how."""

    datasets: Sequence[str] | None = None  # None: all of the config's
    scale: float = 1.0  # image sides x scale
    pair_scale: float | None = None  # pair counts x pair_scale (default: scale)
    steps: int = 2
    cpu_batch: int | None = CPU_BATCH  # None: keep the config's batch size (a GPU machine)
    overrides: Sequence[str] = ()  # "dotted.key=yaml value"
    results: str = "results/rehearsal"
    mem_mb: int | None = None  # the memory a job can have (a local CPU run: the machine's)
    # a CPU rehearsal: measure this machine's inference rates first and price with them
    calibrate_here: bool = False


def reduced_options() -> Options:
    """The rehearsal that fits 2 CPU cores in minutes (the slow test, ``make rehearsal``,
    ``benchmarks/rehearsal.py``): one dataset (actin-confocal, published as 79 x 1024x1024) at
    half its side, 512x512, in the published layout (a numbered folder of two unsplit stacks,
    listed and fetched from the local server, split by ``split.test_fraction``), the full-size
    models, two steps at batch 1, one (loss, lr) cell, 5 pairs (4 train-side, 1 test), and
    neither study nor extra seeds (their runs are the same model at the same size as the
    sweep's, through the same rules; one dataset has no transfer). At full side
    (``--scale 1``) the same rehearsal takes about twice as long."""
    return Options(
        datasets=["actin-confocal"],
        scale=0.5,
        pair_scale=0.05,
        steps=2,
        cpu_batch=1,
        overrides=[
            "grid.losses=[mae]",
            "grid.learning_rates=[0.0001]",
            "grid.augmentation_study=false",
            "grid.scratch_study=false",
            "grid.final_seeds=1",
            "patches.per_image=4",
        ],
    )


def apply_override(config: dict[str, Any], item: str) -> None:
    """Set ``a.b.c=value`` (value parsed as YAML) in ``config``."""
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"--set {item!r}: expected key.path=value")
    *path, last = key.split(".")
    node = config
    for part in path:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {item!r}: {part} is not a mapping")
    node[last] = yaml.safe_load(value)


def rehearsal_config(config: Mapping[str, Any], base_url: str, opts: Options) -> dict[str, Any]:
    """The rehearsal's config (see the module docstring); raises on an unknown dataset."""
    cfg = copy.deepcopy(dict(config))
    names = list(opts.datasets or cfg["datasets"])
    unknown = sorted(set(names) - set(cfg["datasets"]))
    if unknown:
        raise ConfigError(f"--datasets {unknown[0]!r}: not a dataset of the config")
    restrict_datasets(cfg, names)
    pair_scale = opts.scale if opts.pair_scale is None else opts.pair_scale
    for ds in cfg["datasets"].values():
        if "expected" not in ds:
            raise ConfigError("datasets.*.expected: a rehearsal renders the expected sizes")
        ds["expected"] = scaled_size(ds["expected"], opts.scale, pair_scale)
    sources = {ds["source"] for ds in cfg["datasets"].values()}
    checkpoints = {
        m["pretrained"]["download"]
        for m in cfg["models"].values()
        if m["pretrained"]["source"] == "download"
    }
    cfg["downloads"] = {
        key: {
            **{k: v for k, v in spec.items() if k not in ("manual_path", "sha256")},
            "url": f"{base_url}/{key}" + ("/" if spec.get("kind") == "folder" else ""),
            "sha256": None,
            **({"mirrors": []} if spec.get("kind") == "folder" else {}),
        }
        for key, spec in cfg["downloads"].items()
        if key in sources | checkpoints
    }
    t = cfg.setdefault("training", {})
    t.update(steps=opts.steps, val_every=opts.steps, checkpoint_every=opts.steps)
    if "halving" in cfg.get("grid", {}):  # the rungs do not fit a few steps: one rung, train
        cfg["grid"]["halving"].update(budgets=None, min_steps=opts.steps)
    if opts.cpu_batch is not None:  # a CPU rehearsal: smaller batch, no GPU requests
        t["batch_size"] = opts.cpu_batch
        for rule in ("train", "predict"):
            cfg.setdefault("resources", {}).setdefault(rule, {})["gpu"] = 0
    cfg["results"] = opts.results
    cfg["study"] = f"{cfg['study']}-rehearsal"
    for item in opts.overrides:
        apply_override(cfg, item)
    return validate(cfg, source="rehearsal config")


def machine_mem_mb() -> int:
    """Physical memory of this machine in MB."""
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20)


def fit_tiles(cfg: dict[str, Any], mem_mb: int) -> list[str]:
    """On a CPU rehearsal: each model that predicts whole images (``tile: null``) and whose
    predict request (estimate x margin, :mod:`~fmdenoise.costs.estimates`) at the rehearsal's
    largest image exceeds ``mem_mb`` gets the largest tile, a multiple of :data:`TILE_STEP`,
    whose request fits. Sets ``models.<name>.tile`` in ``cfg`` and returns one note per change.
    The study's config is unchanged: on a GPU, or a node with the memory, the model predicts
    whole images."""
    settings = StudySettings.from_config(cfg)
    calibration = Calibration.load(settings.planning.calibration)
    sizes = dataset_sizes(settings, workdir="/nonexistent").values()  # the expected sizes
    expected = [d["expected"] for d in settings.datasets.values()]
    side = max(max(e["height"], e["width"]) for e in expected)
    test_mpx, max_px = max(s.test_mpx for s in sizes), max(s.max_image_px for s in sizes)
    cpus = int(settings.resources.of("predict").cpus)

    def need(model: str) -> int:  # with the tile now in cfg
        now = StudySettings.from_config(cfg)
        kind = method_kind(now, model)
        est = CostModel(now, calibration).predict(model, kind, test_mpx, max_px, "cpu", cpus)
        return int(request(now, "predict", est, gpu=0)["mem_mb"])

    notes = []
    for name in settings.models:
        whole = need(name) if inference_tile(settings, name) is None else 0
        if whole <= mem_mb:
            continue
        for tile in range((side - 1) // TILE_STEP * TILE_STEP, 0, -TILE_STEP):
            cfg["models"][name]["tile"] = tile
            if need(name) <= mem_mb:
                break
        else:
            raise ConfigError(
                f"rehearsal: {name}'s predict job needs {whole} MB whole-image and does not fit "
                f"{mem_mb} MB in {TILE_STEP} px tiles either"
            )
        notes.append(
            f"{name}: whole-image inference of a {side} px image asks for {whole} MB on CPU, "
            f"a job here can have {mem_mb} MB: predicted in {tile} px tiles ({need(name)} MB) "
            "in this rehearsal; the study's config keeps tile: null (whole images on the GPU)"
        )
    return notes


def fit_to_memory(cfg: dict[str, Any], opts: Options) -> list[str]:
    """:func:`fit_tiles` on a CPU rehearsal that knows the memory a job can have
    (``opts.mem_mb``); otherwise nothing changes."""
    return fit_tiles(cfg, opts.mem_mb) if opts.cpu_batch is not None and opts.mem_mb else []


def calibrate_machine(
    config: Mapping[str, Any], out: Path, progress: Any = print
) -> tuple[Path, list[str]]:
    """Measure this machine's CPU inference rates (the config's architectures at full size,
    and BM3D; :func:`~fmdenoise.plan.calibrate.calibrate_inference`) and write ``out``: the
    config's calibration table (``planning.calibration``, else the shipped one) with those rows
    replaced. Returns ``out`` and one note per rate that differs from the table's by more than
    10 %. Without it a CPU rehearsal on a machine slower than the table's prices its predict
    jobs too short."""
    from fmdenoise.models.size import FULL_SIZE  # torch: only here
    from fmdenoise.plan.calibrate import calibrate_inference

    settings = StudySettings.from_config(config)
    base = Calibration.load(settings.planning.calibration)
    archs = sorted({m.arch for m in settings.models.values()} & set(FULL_SIZE))
    rows = calibrate_inference(archs, progress=progress)
    write_table(replace_rows(base.rows, rows), out)
    notes = []
    for row in rows:
        before = base.infer(row["name"], "cpu").value
        if abs(row["value"] / before - 1) > 0.1:
            notes.append(
                f"{row['name']}: inference {row['value']:.4g} s/Mpx on this machine, "
                f"{before:.4g} in the calibration table ({row['value'] / before:.2f}x): "
                f"this rehearsal's requests use this machine's rates ({out.name})"
            )
    return out, notes


def prepare(
    config: Mapping[str, Any], serve_dir: Path, base_url: str, opts: Options
) -> dict[str, Any]:
    """Render the served files into ``serve_dir``; return the rehearsal config."""
    cfg = rehearsal_config(config, base_url, opts)
    serve_dir.mkdir(parents=True, exist_ok=True)
    for i, (name, ds) in enumerate(cfg["datasets"].items()):
        path = serve_dir / ds["source"]
        if cfg["downloads"][ds["source"]].get("kind") == "folder":
            write_published_dataset(name, ds["modality"], ds["expected"], path, i + 1, seed=i)
        elif not path.exists():
            write_dataset_archive(name, ds["modality"], ds["expected"], path, seed=i)
    for model in cfg["models"].values():
        pre = model["pretrained"]
        if pre["source"] == "download" and not (serve_dir / pre["download"]).exists():
            write_checkpoint(model["arch"], pre["format"], serve_dir / pre["download"])
    return cfg


@contextlib.contextmanager
def serve(directory: Path) -> Iterator[str]:
    """Serve ``directory`` on 127.0.0.1 (a free port) for the duration; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def check_site(config: Mapping[str, Any], opts: Options, workdir: Path) -> Options:
    """Before a rehearsal through SLURM: raise when the site (``sinfo``) cannot run the
    rehearsal's jobs as requested (a time limit, or CPUs, memory or GPUs no node has: such a
    job would pend for ever), naming each rule and what to ``--set``. Nothing is rendered
    first. On a CPU rehearsal the memory of the predict partition's largest node is the
    ``mem_mb`` whole-image models are tiled to fit (:func:`fit_tiles`) unless ``opts`` sets
    one; returns the options to run with. Without SLURM to ask, nothing is checked."""
    partitions, nodes = partition_limits(), partition_nodes()
    if partitions is None and nodes is None:
        return opts
    cfg = validate(rehearsal_config(config, "http://127.0.0.1", opts))
    if opts.cpu_batch is not None and opts.mem_mb is None and nodes:
        predict_partition = rule_partition(StudySettings.from_config(cfg), "predict")
        shapes = nodes.get(predict_partition or DEFAULT) or []
        if shapes:
            opts = dataclasses.replace(opts, mem_mb=max(s["mem_mb"] for s in shapes))
    fit_to_memory(cfg, opts)
    plan = make_plan(
        StudySettings.from_config(cfg), workdir=workdir, partitions=partitions, nodes=nodes
    )
    notes = plan["site"]["notes"]
    if notes:
        raise ConfigError(
            "rehearsal: this SLURM site cannot run the rehearsal's jobs as requested (change "
            "them with --set resources.<rule>.<key>=...):\n" + "\n".join(notes)
        )
    return opts


def run(
    config: Mapping[str, Any],
    workdir: Path,
    opts: Options,
    snakemake_args: Sequence[str] = ("--cores", "2"),
    snakefile: Path | None = None,
    site_check: bool = False,
) -> tuple[Path, str]:
    """Prepare, serve, run Snakemake to the end; returns (rehearsal config path, its log).
    A CPU rehearsal with ``opts.calibrate_here`` first measures this machine's inference rates
    and prices its jobs with them (:func:`calibrate_machine`); ``site_check`` (through a SLURM
    profile): :func:`check_site` before and after that."""
    workdir.mkdir(parents=True, exist_ok=True)
    if site_check:  # before minutes of measuring: a site that cannot run the jobs at all
        opts = check_site(config, opts, workdir)
    notes: list[str] = []
    if opts.calibrate_here and opts.cpu_batch is not None:
        table, notes = calibrate_machine(config, workdir / opts.results / MACHINE_TABLE)
        calibration = f"planning.calibration={table.resolve()}"
        opts = dataclasses.replace(opts, overrides=[*opts.overrides, calibration])
        if site_check:  # the requests at this machine's rates
            opts = check_site(config, opts, workdir)
    serve_dir = workdir / "rehearsal-served"
    with serve(serve_dir) as url:
        cfg = prepare(config, serve_dir, url, opts)
        notes += fit_to_memory(cfg, opts)
        write_text(workdir / cfg["results"] / NOTES, "".join(f"{n}\n" for n in notes))
        cfg_path = workdir / "rehearsal.yaml"
        write_text(cfg_path, yaml.safe_dump(cfg, sort_keys=False))
        snakefile = snakefile or Path(__file__).resolve().parents[3] / "Snakefile"
        cmd = [sys.executable, "-m", "snakemake", "-s", str(snakefile), "--directory", str(workdir)]
        cmd += ["--configfile", str(cfg_path), *snakemake_args]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    log = proc.stdout + proc.stderr
    write_text(workdir / cfg["results"] / "rehearsal.log", log)
    if proc.returncode != 0:
        raise FmdenoiseError(f"rehearsal: snakemake failed ({proc.returncode}):\n{log[-5000:]}")
    return cfg_path, log


def write_report(workdir: Path, settings: StudySettings, base_table: Path) -> Path:
    """The rehearsal's report: ``rehearsal.csv``, ``rehearsal_summary.md`` and
    ``calibration.csv`` (:func:`~fmdenoise.plan.efficiency.write_measured`)."""
    return efficiency.write_measured(workdir, settings, base_table, "rehearsal")
