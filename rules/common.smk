# Shared definitions: paths, wildcard constraints, input functions and resources.
import json
import re
from pathlib import Path

from fmdenoise.data.download import local_file_url_path
from fmdenoise.data.ingest import dataset_layout, source_globs
from fmdenoise.config import folder_urls, source_kind
from fmdenoise.settings import StudySettings
from fmdenoise.study import (
    RUN_PATTERN,
    figures,
    finetuned_models,
    inference_settings,
    inference_tile,
    main_init,
    method_kind,
    method_kinds,
    method_noise_level,
    parse_method,
    run_path,
    seed_methods,
    study_datasets,
    tables,
    transfer_source,
    transfer_sources,
    transfer_targets,
)
from fmdenoise.costs.estimates import request
from fmdenoise.costs.requests import JobRequests
from fmdenoise.costs.rules import entry
from fmdenoise.costs.time_limits import chained_retries
from fmdenoise.halving import config_budgets, grid_order, halving, stratum

# The validated config, typed once (fmdenoise.settings): what the library functions take.
SETTINGS = StudySettings.from_config(config)
RESULTS = SETTINGS.results


def alternatives(names):
    """Regex matching exactly one of ``names`` (never matches when empty)."""
    names = sorted(names)
    return "|".join(re.escape(n) for n in names) if names else "(?!x)x"


def canonical(value):
    """``value`` with dict keys sorted recursively: params that do not depend on the order of
    keys in the config file (Snakemake reruns a job when its params' representation changes).
    """
    if isinstance(value, dict):
        return {k: canonical(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [canonical(v) for v in value]
    return value


def models_with_source(source):
    return [m for m, c in SETTINGS.models.items() if c.pretrained.source == source]


def fmt_lr(lr):
    """Learning rate as it appears in run paths (``lr0.001``, ``lr3e-05``)."""
    return f"{lr:g}"


LEARNING_RATES = {fmt_lr(lr): lr for lr in SETTINGS.grid.learning_rates}


wildcard_constraints:
    archive=alternatives(
        k for k, v in config["downloads"].items() if v["kind"] != "folder"
    ),
    folder=alternatives(
        k for k, v in config["downloads"].items() if v["kind"] == "folder"
    ),
    dataset=alternatives(SETTINGS.datasets),
    split="train|val|test",
    model=alternatives(SETTINGS.models),
    loss=alternatives(SETTINGS.grid.losses),
    lr=alternatives(LEARNING_RATES),
    init="pretrained|scratch",
    aug="none|rot",
    seed=r"\d+",
    rung=r"\d+",
    method=r"[A-Za-z0-9_-]+",


# What every rule's jobs ask for: one table (fmdenoise.costs.rules.RULES) read here and by
# fmdenoise plan through the same function (fmdenoise.costs.estimates.request).


def rule_threads(rule_name):
    """Threads of a rule's jobs: the CPUs of its resources entry."""
    return entry(SETTINGS, rule_name).cpus


def rule_retries(rule_name):
    """Resubmissions of a failed job: its entry's ``retries`` (else the rule's own default)
    plus the submissions a partition's time limit chains (``time_limit``)."""
    return chained_retries(SETTINGS, rule_name)


def slurm_options(rule_name, signal=None):
    """The SLURM partition and extra arguments of a rule's entry, where set (otherwise the
    profile's default-resources or the cluster's default apply), with ``--signal=TERM@`` for
    a resumable job under a time limit."""
    own, res = entry(SETTINGS, rule_name), {}
    if own.slurm_partition:
        res["slurm_partition"] = own.slurm_partition
    extra = f"{own.slurm_extra} {signal or ''}".strip()
    if extra:
        res["slurm_extra"] = extra
    return res


def gpu_resources(rule_name, gpu):
    """``gpu`` (a count, or a callable of the wildcards) and, where the job may hold one, the
    entry's ``gpu_model`` when set."""
    res = {"gpu": gpu}
    model = entry(SETTINGS, rule_name).gpu_model
    if model and (callable(gpu) or gpu):
        res["gpu_model"] = model
    return res


def rule_resources(rule_name):
    """mem_mb, runtime and GPUs of a rule whose request is its entry's (capped at the entry's
    time limit), plus its SLURM options."""
    req = request(SETTINGS, rule_name)
    res = dict(mem_mb=req["mem_mb"], runtime=req["runtime"])
    if req["gpu"]:
        res |= gpu_resources(rule_name, req["gpu"])
    return res | slurm_options(rule_name, req["signal"])


# Size-dependent requests (fmdenoise.costs): one calibration table for the whole run.
REQUESTS = JobRequests(SETTINGS)


def sized_resources(rule_name):
    """runtime and mem_mb of a rule whose need grows with its input (ingest, patches, predict,
    metrics): the estimate from the calibration table x planning.margin, never below the
    config's value; predict jobs ask for GPUs by their method's kind."""
    res = slurm_options(rule_name)

    def need(key):
        return lambda wildcards, input: REQUESTS.request(
            rule_name, dict(wildcards), str(input[0])
        )[key]

    res["mem_mb"] = need("mem_mb")
    res["runtime"] = need("runtime")
    if rule_name == "predict":
        res |= gpu_resources(
            "predict", lambda wildcards: REQUESTS.gpus("predict", wildcards.method)
        )
    return res


def method_tile(wildcards):
    """Tile side of a method's inference (the model's own or evaluation.tile)."""
    return inference_tile(SETTINGS, wildcards.method)


def download_base(wildcards):
    """What a ``file:rel`` URL of this download is relative to: the results folder, or the
    workflow's own folder (``relative_to: workflow``, files shipped with the workflow).
    """
    spec = config["downloads"][wildcards.archive]
    return workflow.basedir if spec["relative_to"] == "workflow" else RESULTS


def download_local_input(wildcards):
    """A ``file:rel`` URL is an input (the rule making it runs first; a shipped file's
    changes rerun the download)."""
    url = config["downloads"][wildcards.archive]["url"]
    path = local_file_url_path(url, Path(download_base(wildcards)))
    if path is not None and not url.startswith("file://"):
        return [str(path)]
    return []


def ingest_source(wildcards):
    """The dataset's source folder: its extracted archive, or the files its globs matched
    in a folder source (``sources/<folder>/<dataset>``)."""
    source = config["datasets"][wildcards.dataset]["source"]
    if source_kind(config, wildcards.dataset) == "folder":
        return f"{RESULTS}/sources/{source}/{wildcards.dataset}"
    return f"{RESULTS}/sources/{source}"


def checkpoint_download(wildcards):
    key = SETTINGS.models[wildcards.model].pretrained.download
    return f"{RESULTS}/downloads/{key}"


def patch_files(dataset):
    return [
        f"{RESULTS}/patches/{dataset}/{split}_{role}.npy"
        for split in ("train", "val")
        for role in ("low", "gt")
    ]


def all_targets():
    targets = [f"{RESULTS}/data/{d}" for d in SETTINGS.datasets]
    targets += [f"{RESULTS}/patches/{d}/patches.json" for d in SETTINGS.datasets]
    targets += [f"{RESULTS}/pretrained/{m}.pt" for m in FINETUNE_MODELS]
    return (
        targets
        + training_targets()
        + [f"{RESULTS}/tables/{t}.md" for t in tables(SETTINGS)]
        + [f"{RESULTS}/figures/{f}.png" for f in figures(SETTINGS)]
        + [f"{RESULTS}/answers.md"]
    )


# ---------------------------------------------------------------- training grid


FINETUNE_MODELS = finetuned_models(SETTINGS)
RUN = RUN_PATTERN


def run_dir(model, dataset, loss, lr, init, aug, seed):
    """A run's folder (``lr`` as it appears in paths)."""
    return f"{RESULTS}/runs/{run_path(model, dataset, loss, lr, init, aug, seed)}"


def main_sweep(model, dataset):
    """Run folders of the main sweep: every loss x lr x seed at the model's main init."""
    return [
        run_dir(model, dataset, loss, lr, main_init(SETTINGS, model), "none", seed)
        for loss in SETTINGS.grid.losses
        for lr in LEARNING_RATES
        for seed in SETTINGS.grid.seeds
    ]


def transferred_runs(model, dataset, source):
    """Run folders of a dataset outside grid.sweep_datasets: one per seed, at the (loss, lr)
    selected on ``source`` (its ``select`` checkpoint)."""
    loss, lr = selected_loss_lr(model, source)
    return [
        run_dir(model, dataset, loss, lr, main_init(SETTINGS, model), "none", seed)
        for seed in SETTINGS.grid.seeds
    ]


# Successive halving (grid.search: halving): the rung budgets; the last is training.steps and
# is trained by rule train, the ones before by rule rung, each followed by checkpoint promote.
BUDGETS = config_budgets(SETTINGS)
SEARCH_RUNGS = len(BUDGETS) - 1


def alive_runs(model, dataset, rung):
    """Run folders of the cells trained at ``rung``: the whole main sweep at rung 0, then the
    cells promoted after the rung before (``search/<model>/<dataset>/rung<r-1>.json``); on a
    dataset outside grid.sweep_datasets, the runs at the cell selected on its source.
    """
    source = transfer_source(SETTINGS, dataset)
    if source is not None:
        # no search here: the cell selected on the source, to the full budget
        return transferred_runs(model, dataset, source)
    if rung == 0:
        return main_sweep(model, dataset)
    promoted = checkpoints.promote.get(model=model, dataset=dataset, rung=rung - 1)
    with open(promoted.output[0]) as fh:
        return json.load(fh)["promoted"]


def promotion_files(model, dataset):
    if transfer_source(SETTINGS, dataset) is not None:
        return []
    return [
        f"{RESULTS}/search/{model}/{dataset}/rung{r}.json" for r in range(SEARCH_RUNGS)
    ]


def rung_summaries(wildcards):
    """The rung summaries that checkpoint promote ranks."""
    runs = alive_runs(wildcards.model, wildcards.dataset, int(wildcards.rung))
    return [f"{run}/rung{wildcards.rung}.json" for run in runs]


def searched_cell(wildcards):
    """Whether a run is a cell of the main sweep that the halving search trains in rungs."""
    return (
        SEARCH_RUNGS > 0
        and wildcards.init == main_init(SETTINGS, wildcards.model)
        and wildcards.aug == "none"
        and int(wildcards.seed)
        in SETTINGS.grid.seeds  # not a seed added after selection
        and transfer_source(SETTINGS, wildcards.dataset) is None
    )


def rung_inputs(wildcards):
    """Patches, pretrained weights, and the state of the cell's previous rung."""
    inputs = cell_inputs(wildcards)
    r = int(wildcards.rung)
    if r > 0:
        inputs["start_from"] = rung_state(wildcards, r - 1)
    return inputs


def select_inputs(wildcards):
    """run.json of the cells that trained to the full budget (every cell of the full grid,
    the last rung's cells of a halving search) and the search's promotion files."""
    m, d = wildcards.model, wildcards.dataset
    runs = alive_runs(m, d, SEARCH_RUNGS)
    return {
        "runs": [f"{r}/run.json" for r in runs],
        "promotions": promotion_files(m, d),
    }


def selected_run(model, dataset):
    """The cell chosen on validation (``selected/<model>/<dataset>.json``, a checkpoint)."""
    sel_file = checkpoints.select.get(model=model, dataset=dataset).output[0]
    with open(sel_file) as fh:
        return json.load(fh)["selected"]


def selected_loss_lr(model, dataset):
    """The selected cell's loss and learning rate as they appear in run paths."""
    chosen = selected_run(model, dataset)
    return chosen["loss"], fmt_lr(chosen["lr"])


def study_runs(wildcards):
    """Scratch and augmentation studies at the (loss, lr) selected on validation."""
    loss, lr = selected_loss_lr(wildcards.model, wildcards.dataset)
    grid = SETTINGS.grid
    runs = []
    for seed in grid.seeds:
        runs.append(
            run_dir(
                wildcards.model, wildcards.dataset, loss, lr, "pretrained", "none", seed
            )
        )
        if grid.scratch_study:
            runs.append(
                run_dir(
                    wildcards.model,
                    wildcards.dataset,
                    loss,
                    lr,
                    "scratch",
                    "none",
                    seed,
                )
            )
        if grid.augmentation_study:
            runs.append(
                run_dir(
                    wildcards.model,
                    wildcards.dataset,
                    loss,
                    lr,
                    "pretrained",
                    "rot",
                    seed,
                )
            )
    return [f"{r}/run.json" for r in runs]


RUN_KEYS = ("model", "dataset", "loss", "lr", "init", "aug", "seed")


def cell_inputs(wildcards):
    """What every training job of a cell reads: patches, and pretrained weights."""
    inputs = {"patches": patch_files(wildcards.dataset)}
    if wildcards.init == "pretrained":
        inputs["pretrained"] = f"{RESULTS}/pretrained/{wildcards.model}.pt"
    return inputs


def rung_state(wildcards, rung):
    """The state a cell's run left at the end of ``rung`` (rule rung's output)."""
    run = run_dir(**{k: getattr(wildcards, k) for k in RUN_KEYS})
    return f"{run}/rung{rung}.pt"


def train_inputs(wildcards):
    """A cell's inputs and (a cell of a halving search) its last rung's state."""
    inputs = cell_inputs(wildcards)
    if searched_cell(wildcards):
        inputs["start_from"] = rung_state(wildcards, SEARCH_RUNGS - 1)
    return inputs


def train_cell(wildcards):
    return dict(
        model=wildcards.model,
        dataset=wildcards.dataset,
        loss=wildcards.loss,
        lr=LEARNING_RATES[wildcards.lr],
        init=wildcards.init,
        aug=wildcards.aug,
        seed=int(wildcards.seed),
    )


def training_targets():
    targets, studied = [], study_datasets(SETTINGS)
    for model in SETTINGS.models:
        for dataset in SETTINGS.datasets:
            targets.append(f"{RESULTS}/selected/{model}/{dataset}.json")
            if model in FINETUNE_MODELS and dataset in studied:
                targets.append(f"{RESULTS}/studies/{model}/{dataset}.json")
    return targets


# ---------------------------------------------------------------- evaluation


def methods(dataset):
    """Every method evaluated on ``dataset``: baselines and fine-tuned models (the plan's
    list, so that what it prices is what runs)."""
    return list(method_kinds(SETTINGS, dataset))


def predict_inputs(wildcards):
    """The test set and, for a model method (``fmdenoise.study``), its weights: published
    (zero-shot), the selected cell's, an extra seed's of it, or another dataset's (transfer).
    """
    inputs = {"data": f"{RESULTS}/data/{wildcards.dataset}"}
    m = parse_method(SETTINGS, wildcards.method)
    if m is None:
        return inputs
    if m.variant == "zeroshot":
        inputs["checkpoint"] = f"{RESULTS}/pretrained/{m.model}.pt"
        return inputs
    run = selected_run(m.model, wildcards.dataset)["run"]
    if m.variant == "seed":
        run = f"{Path(run).parent}/seed{m.seed}"
    inputs["checkpoint"] = f"{run}/model.pt"
    return inputs


def method_spec(wildcards):
    """What ``predict`` runs. Models get their checkpoint from ``input.checkpoint`` in the
    script: params must not depend on input, because the input of a fine-tuned model comes
    from the ``select`` checkpoint, which a job submitted alone (SLURM) resolves only after
    Snakemake has evaluated the params."""
    m = wildcards.method
    kind = method_kind(SETTINGS, m)
    if kind.neural:
        return {
            "kind": kind.name,
            "noise_level": canonical(method_noise_level(SETTINGS, m)),
        }
    if kind.name == "provided":
        return {"kind": "provided", "name": m.removeprefix("provided-")}
    return {"kind": kind.name}


def all_metrics(wildcards):
    """Per-image metrics of every method (no checkpoint needed: kept apart from the selected
    runs so that the metric jobs enter the DAG at once, next to their predict jobs)."""
    return [
        f"{RESULTS}/metrics/{m}/{d}.csv" for d in SETTINGS.datasets for m in methods(d)
    ]


def seed_metrics(wildcards):
    """Per-image metrics of the extra seeds' runs of every selected cell (grid.final_seeds)."""
    return [
        f"{RESULTS}/metrics/{m}/{d}.csv"
        for d in SETTINGS.datasets
        for m in seed_methods(SETTINGS, d)
    ]


def transfer_inputs(wildcards):
    """The model selected on the dataset, and the test sets it is applied to."""
    return {
        "checkpoint": f"{selected_run(wildcards.model, wildcards.dataset)['run']}/model.pt",
        "data": [
            f"{RESULTS}/data/{d}" for d in transfer_targets(SETTINGS, wildcards.dataset)
        ],
    }


def transfer_score_inputs(wildcards):
    """The transfer predictions of the model selected on the dataset, and the test sets they
    are scored against."""
    m, d = wildcards.model, wildcards.dataset
    return {
        "predictions": f"{RESULTS}/transfer/{m}/{d}.predictions",
        "data": [f"{RESULTS}/data/{t}" for t in transfer_targets(SETTINGS, d)],
    }


def transfer_resources(rule_name):
    """A transfer job's request, sized for the test sets it predicts (transfer_predict, on
    the GPU) or scores (transfer, on CPUs)."""
    res = slurm_options(rule_name) | gpu_resources(rule_name, REQUESTS.gpus(rule_name))

    def need(key):
        return lambda wildcards, input: REQUESTS.transfer_request(
            rule_name, wildcards.model, wildcards.dataset, list(input.get("data", []))
        )[key]

    res["mem_mb"], res["runtime"] = need("mem_mb"), need("runtime")
    return res


def transfer_table_inputs(wildcards):
    """What the transfer table compares: each model's transfer metrics and, on every
    dataset, the metrics of raw, the zero-shot and the selected models."""
    return {
        "transfer": [
            f"{RESULTS}/transfer/{m}/{d}.csv"
            for d in transfer_sources(SETTINGS)
            for m in SETTINGS.models
        ],
        "metrics": [
            f"{RESULTS}/metrics/{m}/{d}.csv"
            for d in SETTINGS.datasets
            for m in methods(d)
            if m == "raw" or parse_method(SETTINGS, m)
        ],
    }


def selected_run_files(wildcards):
    """run.json of the cell selected on validation, per model and dataset (checkpoint)."""
    return [
        f"{selected_run(m, d)['run']}/run.json"
        for d in SETTINGS.datasets
        for m in SETTINGS.models
    ]


def cost_table_inputs(wildcards):
    """Predictions (their ``timing.json``) of every method, and the selection files and
    sweep runs of every trained model."""
    datasets = SETTINGS.datasets
    return {
        "predictions": [
            f"{RESULTS}/predictions/{m}/{d}" for d in datasets for m in methods(d)
        ],
        "selected": [
            f"{RESULTS}/selected/{m}/{d}.json"
            for m in SETTINGS.models
            for d in datasets
        ],
        "runs": [
            f"{run}/run.json"
            for m in SETTINGS.models
            for d in datasets
            for run in alive_runs(m, d, SEARCH_RUNGS)
        ],
    }


def study_files(wildcards):
    return [
        f"{RESULTS}/studies/{m}/{d}.json"
        for m in FINETUNE_MODELS
        for d in study_datasets(SETTINGS)
    ]


def answers_inputs(wildcards):
    """The tables the answer sheet reads and the per-image metrics of every method."""
    return {
        "tables": [f"{RESULTS}/tables/{t}.csv" for t in tables(SETTINGS)],
        "metrics": all_metrics(wildcards),
        "data": [f"{RESULTS}/data/{d}" for d in SETTINGS.datasets],
    }


def example_inputs(wildcards):
    d = wildcards.dataset
    return {
        "data": f"{RESULTS}/data/{d}",
        "predictions": [
            f"{RESULTS}/predictions/{m}/{d}" for m in methods(d) if m != "raw"
        ],
    }


def search_table_inputs(wildcards):
    """Every promotion file and selection file of the halving search."""
    pairs = [(m, d) for m in SETTINGS.models for d in SETTINGS.datasets]
    return {
        "promotions": [f for m, d in pairs for f in promotion_files(m, d)],
        "selected": [f"{RESULTS}/selected/{m}/{d}.json" for m, d in pairs],
    }
