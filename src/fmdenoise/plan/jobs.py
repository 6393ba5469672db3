"""The jobs a study config makes, rule by rule, each with its size, estimate and request.

This mirrors the DAG of ``rules/*.smk`` from the config alone (no Snakemake, no data), including
the jobs that exist only after the ``select`` checkpoint (the scratch and augmentation runs
and the selected models' predictions), which ``snakemake -n`` cannot list before training. A
test checks the counts against ``snakemake -n`` for every rule it does list.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from fmdenoise.costs.estimates import CostModel, Estimate, request
from fmdenoise.costs.rules import entry, rule_gpus
from fmdenoise.costs.sizes import DatasetSize
from fmdenoise.halving import cells_per_rung, config_budgets, halving, stratum
from fmdenoise.settings import StudySettings
from fmdenoise.study import (
    VALIDATION_TABLES,
    extra_seeds,
    figures,
    finetuned_models,
    main_init,
    method_kind,
    method_kinds,
    run_path,
    seed_methods,
    study_datasets,
    tables,
    transfer_source,
    transfer_targets,
)

#: the rules whose jobs are grouped into one SLURM submission (profiles/slurm: groups)
GROUPS = {"predict": "evaluate", "metrics": "evaluate"}


#: files every job leaves besides its outputs: its log, its benchmark record and its request
#: record (fmdenoise.process.record_request)
JOB_RECORDS = 3
#: bytes of those three (a training log's progress lines included), and of a figure (PNG) and a
#: table (CSV, Markdown, LaTeX): measured on the demo (results/demo/{logs,benchmarks}: 12 KB a
#: job; figures 216 KB each; tables 7 KB)
JOB_RECORD_BYTES = 16e3
#: what stays of an unselected candidate's model.pt with grid.keep_weights: selected
DROPPED_NOTE_BYTES = 1e3
FIGURE_BYTES = 250e3
TABLE_BYTES = 10e3


@dataclasses.dataclass(frozen=True)
class Job:
    """One job: rule, what it is about, its estimate, its request and the disk it writes.

    ``disk_bytes`` stays once the job has finished (to the end of the study);
    ``transient_bytes`` is held only while it runs (a training run's ``last.pt``, dropped when
    it finishes); ``held_bytes`` (a ``select`` job's) is the most its model and dataset's
    search holds at once of what its decisions drop: rung states until their promotion or
    continuation, the weights of candidates not selected (``grid.keep_weights: selected``);
    ``files`` counts what stays: output files, its log and benchmark record, and
    Snakemake's metadata record of each declared output (``.snakemake/metadata``)."""

    rule: str
    label: str
    stage: str  # downloads | sources | data | patches | pretrained | runs | predictions | tables
    estimate: Estimate
    request: Mapping[str, Any]
    disk_bytes: float = 0.0
    group: str | None = None
    transient_bytes: float = 0.0
    files: int = 0
    held_bytes: float = 0.0  # a select job: its search's states and weights at most at once


def _device(req: Mapping[str, Any]) -> str:
    return "cuda" if req["gpu"] > 0 else "cpu"


class JobBuilder:
    """Builds the job list of a study (see :func:`study_jobs`)."""

    def __init__(
        self,
        settings: StudySettings,
        sizes: Mapping[str, DatasetSize],
        costs: CostModel,
        listed: Mapping[str, float] | None = None,
    ):
        self.settings, self.sizes, self.costs = settings, sizes, costs
        self.listed = listed or {}
        self.jobs: list[Job] = []

    def add(
        self,
        rule: str,
        label: str,
        stage: str,
        est: Estimate,
        disk: float = 0.0,
        gpu: int | None = None,
        *,
        files: int = 1,
        outputs: int = 1,
        transient: float = 0.0,
        held: float = 0.0,
    ) -> Job:
        """A job writing ``files`` files (``outputs`` of them declared to Snakemake; a
        directory is one output) and ``disk`` bytes kept, ``transient`` more while it runs."""
        job = Job(
            rule,
            label,
            stage,
            est,
            request(self.settings, rule, est, gpu=gpu),
            disk,
            GROUPS.get(rule),
            transient,
            files + outputs + JOB_RECORDS,
            held,
        )
        self.jobs.append(job)
        return job

    def archive_sizes(self, archive: str) -> list[DatasetSize]:
        """The sizes of the datasets ``archive`` holds: the config's datasets from it, or every
        dataset the demo's synthetic source was made with (a reduced config uses fewer)."""
        sizes = [
            self.sizes[d] for d, ds in self.settings.datasets.items() if ds["source"] == archive
        ]
        synth = self.settings.config.get("synthetic_source")
        if synth and sizes:  # one synthetic archive; its datasets share one shape
            return sizes[:1] * len(synth["datasets"])
        return sizes

    def archive_bytes(self, archive: str) -> float:
        return sum(size.data_mpx * 1e6 * 4 for size in self.archive_sizes(archive))

    def source_bytes(self, dataset: str) -> float:
        """Bytes of a folder source's files for ``dataset``: the listing's (``listed``, when
        the site was reached) or its stacks' from the expected size (float32 planes)."""
        if dataset in self.listed:
            return self.listed[dataset]
        size = self.sizes[dataset]
        return size.data_mpx * 1e6 * 4

    def data_stage(self) -> None:
        s, costs = self.settings, self.costs
        downloads = s.config["downloads"]
        folders = [d for d, ds in s.datasets.items() if downloads[ds["source"]]["kind"] == "folder"]
        archives = sorted({ds["source"] for d, ds in s.datasets.items() if d not in folders})
        checkpoints = {
            m: str(cfg.pretrained.download)
            for m, cfg in s.models.items()
            if cfg.pretrained.source == "download"
        }
        if s.config.get("synthetic_source"):  # the archive the demo then downloads from itself
            nbytes = sum(self.archive_bytes(a) for a in archives)
            self.add("synthetic_source", "synthetic", "downloads", costs.small(), nbytes)
        for name in archives:
            nbytes = self.archive_bytes(name)
            # stacks: low and ground truth of each side, one file per provided method
            members = sum(4 + size.provided for size in self.archive_sizes(name))
            self.add("download", name, "downloads", costs.download(nbytes), nbytes, files=2)
            self.add("extract", name, "sources", costs.extract(nbytes), nbytes, files=members)
        for name in folders:  # the cache in downloads/, hard links in sources/ (no bytes)
            nbytes = self.source_bytes(name)
            members = 2 + self.sizes[name].provided
            label = f"{s.datasets[name]['source']}/{name}"
            self.add(
                "fetch_folder",
                label,
                "downloads",
                costs.download(nbytes),
                nbytes,
                files=2 * members + 1,
                outputs=2,
            )
        for model, key in checkpoints.items():
            nbytes = 4 * costs.parameters(model)
            self.add("download", key, "downloads", costs.download(nbytes), nbytes, files=2)
            self.add("convert_checkpoint", model, "pretrained", costs.extract(nbytes), nbytes)
        for model, cfg in s.models.items():
            if cfg.pretrained.source == "pretrain":
                est = costs.small()
                self.add("pretrain", model, "pretrained", est, 4 * costs.parameters(model))
        p = s.patches
        for name, size in self.sizes.items():
            self.add(
                "ingest",
                name,
                "data",
                costs.data_rule("ingest", size.data_mpx, size.max_image_px),
                size.data_mpx * 4e6,
                files=size.files + 1,  # + manifest.csv
            )
            n_patches = (size.train_images + size.val_images) * p.per_image
            patch_bytes = 2 * n_patches * p.size**2 * 4
            self.add(
                "patches",
                name,
                "patches",
                costs.data_rule("patches", 2 * size.train_mpx, size.max_image_px),
                patch_bytes,
                files=5,  # train/val x low/gt, patches.json
            )

    def train_stage(self) -> None:
        s, costs, grid = self.settings, self.costs, self.settings.grid
        lrs, seeds = grid.learning_rates, grid.seeds
        studied = study_datasets(s)
        for model in s.models:
            finetune = model in finetuned_models(s)
            run_bytes = RunBytes(costs.parameters(model))
            for dataset, size in self.sizes.items():
                device = "cuda" if rule_gpus(s, "train") > 0 else "cpu"
                est = costs.train(model, device, size.val_images)
                init = main_init(s, model)
                source = transfer_source(s, dataset)
                if source is None:
                    cells = [
                        run_path(model, dataset, loss, lr, init, "none", seed)
                        for loss in grid.losses
                        for lr in lrs
                        for seed in seeds
                    ]
                    held = self.search(model, dataset, cells, device, size.val_images, run_bytes)
                else:  # one run per seed at the cell selected on the source, no search
                    for i, seed in enumerate(seeds):
                        label = f"{model}/{dataset}/<selected on {source}>/{init}/none/seed{seed}"
                        self.add_train(label, est, run_bytes, candidate=i + 1)
                    held = self.dropped_weights(len(seeds), run_bytes)
                self.add("select", f"{model}/{dataset}", "runs", costs.small(), held=held)
                for seed in extra_seeds(s, dataset):  # the selected cell again (final_seeds)
                    label = f"{model}/{dataset}/<selected>/{init}/none/seed{seed}"
                    self.add_train(label, est, run_bytes)
                if not finetune or dataset not in studied:
                    continue
                extra = [("scratch", "none")] * grid.scratch_study + [
                    ("pretrained", "rot")
                ] * grid.augmentation_study
                for init2, aug in extra:
                    for seed in seeds:
                        label = f"{model}/{dataset}/<selected>/{init2}/{aug}/seed{seed}"
                        self.add_train(label, est, run_bytes)
                self.add("studies", f"{model}/{dataset}", "runs", costs.small())

    def add_train(self, label: str, est: Estimate, run: RunBytes, *, candidate: int = 0) -> Job:
        """A train job: keeps model.pt, curve.csv and run.json; its last.pt only while it runs.
        ``candidate``: its place among its model and dataset's selection candidates (1, 2, ...;
        0: not a candidate, a study run). With ``grid.keep_weights: selected`` one candidate
        keeps its weights and the others' are dropped at selection (a note of ~1 KB stays)."""
        kept = run.model
        if candidate > 1 and self.settings.grid.keep_weights == "selected":
            kept = DROPPED_NOTE_BYTES
        return self.add("train", label, "runs", est, kept, files=3, outputs=3, transient=run.state)

    def dropped_weights(self, candidates: int, run: RunBytes) -> float:
        """The weights of ``candidates`` finished runs that selection drops (all but one, with
        ``grid.keep_weights: selected``): held until the selection."""
        if self.settings.grid.keep_weights != "selected":
            return 0.0
        return (candidates - 1) * run.model

    def search(
        self,
        model: str,
        dataset: str,
        cells: list[str],
        device: str,
        val_images: int,
        run_bytes: RunBytes,
    ) -> float:
        """The main sweep's training jobs: every cell to the full budget, or (halving) the
        rung jobs, the promotions, and the last rung's cells to the full budget. Which cells
        survive is known only after training; their number is not (``cells_per_rung``).

        Returns the most the search holds at once of what its decisions drop. A cell has one
        state at rest: its rung's, until the promotion drops it or the next job continues the
        cell and drops it; so rung r holds its cells' states, the last phase the last rung's
        states until ``train`` continues them (then the candidates' weights, smaller)."""
        s = self.settings
        budgets = config_budgets(s)
        eta = int(s.grid.halving.eta) if halving(s) else 1
        n_losses = len(s.grid.losses)
        groups = [n_losses if halving(s) and stratum(s, r) else 1 for r in range(len(budgets) - 1)]
        counts = cells_per_rung(len(cells), len(budgets), eta, groups)
        held = [n * run_bytes.state for n in counts[:-1]] + [
            self.dropped_weights(counts[-1], run_bytes)
        ]
        start = 0
        for r, (budget, n) in enumerate(zip(budgets, counts, strict=True)):
            final = r == len(budgets) - 1
            est = self.costs.train(model, device, val_images, budget - start, first=r == 0)
            for i, label in enumerate(cells[:n]):  # which n cells: decided by validation
                if final:
                    self.add_train(label, est, run_bytes, candidate=i + 1)
                else:  # rung<r>.pt becomes a note at promotion (not promoted) or once the
                    # next rung or train has continued the cell: held until then
                    rung = f"{label}/rung{r}"
                    self.add("rung", rung, "runs", est, DROPPED_NOTE_BYTES, files=2, outputs=2)
            if not final:
                self.add("promote", f"{model}/{dataset}/rung{r}", "runs", self.costs.small())
            start = budget
        if len(counts) > 1:  # the last rung's states wait for train
            held[-1] = max(held[-1], counts[-1] * run_bytes.state)
        return max(held)

    def evaluate_stage(self) -> None:
        s, costs = self.settings, self.costs
        cpus = int(entry(s, "predict").cpus)
        for dataset, size in self.sizes.items():
            kinds = method_kinds(s, dataset)
            kinds |= {m: method_kind(s, m) for m in seed_methods(s, dataset)}
            for method, kind in kinds.items():
                gpu = rule_gpus(s, "predict") if kind.neural else 0
                device = "cuda" if gpu else "cpu"
                est = costs.predict(method, kind, size.test_mpx, size.max_image_px, device, cpus)
                self.add(
                    "predict",
                    f"{method}/{dataset}",
                    "predictions",
                    est,
                    size.test_mpx * 4e6,
                    gpu=gpu,
                    files=size.test_images + 1,  # + timing.json
                )
                self.add(
                    "metrics",
                    f"{method}/{dataset}",
                    "predictions",
                    costs.data_rule("metrics", 2 * size.test_mpx, size.max_image_px),
                )
            self.add("figure_examples", dataset, "tables", costs.small(), FIGURE_BYTES)
            targets = [self.sizes[d] for d in transfer_targets(s, dataset)]
            gpu = rule_gpus(s, "transfer_predict")
            pred_bytes = sum(t.test_mpx * 4e6 for t in targets)
            for model in s.models if targets else []:  # evaluation.transfer
                est = costs.transfer_predict(model, targets, "cuda" if gpu else "cpu")
                label = f"{model}/{dataset}"
                # its predictions are held until the transfer job has scored them (temp)
                self.add(
                    "transfer_predict", label, "predictions", est, gpu=gpu, files=0,
                    outputs=0, transient=pred_bytes,
                )  # fmt: skip
                est = costs.transfer_scores(targets)
                self.add("transfer", label, "predictions", est, TABLE_BYTES)
        for table in tables(s):
            rule = "table_validation" if table in VALIDATION_TABLES else f"table_{table}"
            self.add(rule, table, "tables", costs.small(), TABLE_BYTES, files=3)
        for figure in figures(s):
            if not figure.startswith("examples/"):  # those: one per dataset, above
                self.add(f"figure_{figure}", figure, "tables", costs.small(), FIGURE_BYTES)
        self.add("answers", "answers", "tables", costs.small())


@dataclasses.dataclass(frozen=True)
class RunBytes:
    """What one training run of a model with ``parameters`` weights holds on disk (float32)."""

    parameters: int

    @property
    def model(self) -> float:
        """model.pt (the best weights), kept: what selection, prediction and export read."""
        return 4.0 * self.parameters

    @property
    def state(self) -> float:
        """last.pt / a rung's state while unfinished: weights, the optimizer's two moments
        (Adam/AdamW) and the best weights so far, 4x the weights."""
        return 16.0 * self.parameters


def study_jobs(
    settings: StudySettings,
    sizes: Mapping[str, DatasetSize],
    costs: CostModel,
    listed: Mapping[str, float] | None = None,
) -> list[Job]:
    """Every job of the study, in DAG order (``listed``: a folder source's bytes per dataset,
    from its listing)."""
    builder = JobBuilder(settings, sizes, costs, listed)
    builder.data_stage()
    builder.train_stage()
    builder.evaluate_stage()
    return builder.jobs
