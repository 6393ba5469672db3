"""Resource requests that follow the size of a job's input (the workflow's resource callables).

``rules/common.smk`` asks :class:`JobRequests` for the ``runtime`` and ``mem_mb`` of ingest,
patches, predict and metrics jobs: the dataset's megapixels are read from the job's input (the
ingested manifest, or the TIFF files a dataset's globs match in the extracted source) and priced
by the same :class:`~fmdenoise.costs.estimates.CostModel` as ``fmdenoise plan``. Before the
input exists (a dry run) the config's expected sizes stand in.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fmdenoise.costs.calibration import Calibration
from fmdenoise.costs.estimates import CostModel, Estimate, request
from fmdenoise.costs.rules import entry, rule_gpus
from fmdenoise.costs.sizes import DatasetSize, dataset_sizes, from_manifest
from fmdenoise.data.ingest import dataset_layout
from fmdenoise.settings import StudySettings
from fmdenoise.study import method_kind, transfer_targets


class JobRequests:
    """Size-dependent requests for one workflow run (one calibration table, cached sizes)."""

    def __init__(self, settings: StudySettings) -> None:
        self.settings = settings
        self.costs = CostModel(settings, Calibration.load(settings.planning.calibration))
        self._expected: dict[str, DatasetSize] | None = None
        self._measured: dict[str, DatasetSize] = {}

    def expected(self, dataset: str) -> DatasetSize:
        if self._expected is None:
            self._expected = dataset_sizes(self.settings)
        return self._expected[dataset]

    def size(self, dataset: str, data_dir: str) -> DatasetSize:
        """Measured from ``data_dir``'s manifest when it exists (then cached), else expected."""
        if data_dir not in self._measured:
            manifest = Path(data_dir) / "manifest.csv"
            if not manifest.is_file():
                return self.expected(dataset)
            self._measured[data_dir] = from_manifest(manifest)
        return self._measured[data_dir]

    def source_mpx(self, dataset: str, source_dir: str) -> tuple[float, int]:
        """Megapixels (float32 equivalent) of the files a dataset's globs match in its extracted
        source, and the largest plane; expected sizes before extraction."""
        layout = dataset_layout(dataset, self.settings.datasets[dataset])
        root = Path(source_dir) / layout.get("root", ".")
        patterns = [layout["train"]["low"], layout["train"]["gt"], layout["test"]["low"]]
        patterns += [layout["test"]["gt"], *layout["test"].get("provided", {}).values()]
        files = (
            {p for pattern in patterns for p in root.glob(pattern) if p.is_file()}
            if root.is_dir()
            else set()
        )
        if not files:
            size = self.expected(dataset)
            return size.data_mpx, size.max_image_px
        nbytes = sum(p.stat().st_size for p in files)
        return nbytes / 4 / 1e6, self.expected(dataset).max_image_px

    def estimate(self, rule: str, wildcards: Mapping[str, str], input_dir: str) -> Estimate:
        dataset = wildcards["dataset"]
        if rule == "ingest":
            mpx, max_px = self.source_mpx(dataset, input_dir)
            return self.costs.data_rule("ingest", mpx, max_px)
        size = self.size(dataset, input_dir)
        if rule == "patches":
            return self.costs.data_rule("patches", 2 * size.train_mpx, size.max_image_px)
        if rule == "metrics":
            return self.costs.data_rule("metrics", 2 * size.test_mpx, size.max_image_px)
        method = wildcards["method"]
        gpu = self.gpus(rule, method)
        cpus = int(entry(self.settings, rule).cpus)
        device = "cuda" if gpu else "cpu"
        kind = method_kind(self.settings, method)
        return self.costs.predict(method, kind, size.test_mpx, size.max_image_px, device, cpus)

    def gpus(self, rule: str, method: str = "") -> int:
        """GPUs of a job: the rule's (:func:`~fmdenoise.costs.rules.rule_gpus`), but none for
        a predict job of a method that is no network (:func:`~fmdenoise.study.method_kind`)."""
        if rule == "predict" and not method_kind(self.settings, method).neural:
            return 0
        return rule_gpus(self.settings, rule)

    def transfer_request(
        self, rule: str, model: str, dataset: str, data_dirs: list[str] | None = None
    ) -> dict[str, Any]:
        """``{cpus, mem_mb, runtime, gpu}`` of a transfer job of ``model`` selected on
        ``dataset``: ``transfer_predict`` applies it to every other dataset's test set, and
        ``transfer`` scores those predictions (``data_dirs``: the ingested folders, in
        :func:`~fmdenoise.study.transfer_targets` order)."""
        targets = transfer_targets(self.settings, dataset)
        dirs = data_dirs or [""] * len(targets)
        sizes = [self.size(d, str(p)) for d, p in zip(targets, dirs, strict=True)]
        gpu = self.gpus(rule)
        if rule == "transfer_predict":
            est = self.costs.transfer_predict(model, sizes, "cuda" if gpu else "cpu")
        else:
            est = self.costs.transfer_scores(sizes)
        return request(self.settings, rule, est, gpu=gpu)

    def request(self, rule: str, wildcards: Mapping[str, str], input_dir: str) -> dict[str, Any]:
        """``{cpus, mem_mb, runtime, gpu}`` of one job (see :func:`estimates.request`)."""
        est = self.estimate(rule, wildcards, input_dir)
        return request(self.settings, rule, est, gpu=self.gpus(rule, wildcards.get("method", "")))
