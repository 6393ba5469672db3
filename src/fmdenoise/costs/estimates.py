"""What one job of each rule needs: wall seconds and peak memory, from the calibration table.

:class:`CostModel` turns a job's size (a dataset's megapixels, a model and its training budget)
into an :class:`Estimate`; :func:`request` gives the job's resource request (for a rule sized by
its input, the estimate times ``planning.margin``, never below the config's ``resources``
entry; for the others, the entry; :mod:`fmdenoise.costs.rules` says which rule is which).
The workflow's resource callables (``rules/common.smk``) and ``fmdenoise plan`` use the same two
functions, so what the plan prices is what the jobs ask for.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

from fmdenoise.costs.calibration import Calibration, Figure
from fmdenoise.costs.rules import entry, rule_gpus, rule_of
from fmdenoise.costs.time_limits import rule_chain
from fmdenoise.errors import FmdenoiseError
from fmdenoise.evaluate.tiling import tiling_overhead
from fmdenoise.settings import StudySettings
from fmdenoise.study import METHOD_KINDS, MethodKind, inference_tile, parse_method

#: Jobs whose cost does not grow with the study (selection, tables, figures): measured on the
#: demo's benchmark files, they take seconds and a few hundred MB; planned generously.
SMALL_JOB = {"seconds": 120.0, "mem_mb": 1500.0}
#: Host memory of a process holding torch and the study's libraries.
BASE_MEM_MB = 700.0
#: Start-up of a data job (interpreter, imports, reading the manifest), whatever its size.
FIXED_SECONDS = 10.0


@dataclasses.dataclass(frozen=True)
class Estimate:
    """Wall seconds and peak host memory of one job; GPU memory where it runs on a GPU."""

    seconds: float
    mem_mb: float
    gpu_mem_mb: float | None = None
    source: str = "measured"

    @property
    def estimated(self) -> bool:
        return "estimate" in self.source


class CostModel:
    """Per-job estimates for one study config and one calibration table."""

    def __init__(self, settings: StudySettings, calibration: Calibration) -> None:
        self.settings, self.cal = settings, calibration
        self._scale: dict[str, float] = {}

    # ---------------------------------------------------------------- helpers
    def _model(self, model: str) -> tuple[str, dict[str, Any], bool]:
        """(arch, kwargs, whether they are the published full size) of a configured model."""
        from fmdenoise.models.size import FULL_SIZE  # torch: only when needed

        cfg = self.settings.models[model]
        kwargs = dict(cfg.kwargs)
        return cfg.arch, kwargs, kwargs == FULL_SIZE[cfg.arch]

    def flop_scale(self, model: str) -> float:
        """FLOPs of the configured model relative to the full-size architecture (1 at full
        size; the demo's small models are priced from the full-size rows by this ratio)."""
        from fmdenoise.models.size import gflop_forward

        if model not in self._scale:
            arch, kwargs, full = self._model(model)
            self._scale[model] = 1.0 if full else gflop_forward(arch, kwargs) / self.cal.gflop(arch)
        return self._scale[model]

    def parameters(self, model: str) -> int:
        """Parameters of the configured model (from the table at full size)."""
        from fmdenoise.models.size import parameter_count

        arch, kwargs, full = self._model(model)
        return self.cal.parameters(arch) if full else parameter_count(arch, kwargs)

    def _scaled(self, fig: Figure, model: str) -> tuple[float, str]:
        scale = self.flop_scale(model)
        note = fig.source if scale == 1 else f"{fig.source}, x{scale:.3g} by FLOPs"
        return fig.value * scale, note

    # ---------------------------------------------------------------- rules
    def train(
        self,
        model: str,
        device_type: str,
        val_images: int,
        steps: int | None = None,
        first: bool = True,
    ) -> Estimate:
        """One training job of ``steps`` steps (default: the whole budget) plus its validation
        passes (the step-0 one if it is the ``first`` job of its run; a rung of a halving
        search is one part of a run)."""
        t, p = self.settings.training, self.settings.patches
        arch = self.settings.models[model].arch
        fig = self.cal.train_step(arch, device_type, int(t.batch_size), int(p.size), t.compile)
        step, note = self._scaled(fig, model)
        steps = int(t.steps) if steps is None else int(steps)
        validations = steps // int(t.val_every) + int(first)
        val_patches = val_images * int(p.per_image)
        val_seconds = validations * val_patches * step / int(t.batch_size) / 3.0
        params = self.parameters(model)
        # model, AdamW moments, best weights, gradients (float32) on the device
        state_mb = 5 * 4 * params / 2**20
        mem = fig.peak_mem_mb or (BASE_MEM_MB + state_mb)
        if device_type == "cuda":
            gpu = fig.peak_mem_mb or state_mb * 2
            return Estimate(steps * step + val_seconds, BASE_MEM_MB * 4 + state_mb, gpu, note)
        return Estimate(steps * step + val_seconds, mem, None, note)

    def predict(
        self, method: str, kind: MethodKind, test_mpx: float, max_px: int, device: str, cpus: int
    ) -> Estimate:
        """Test-set inference of one method: s/Mpx x megapixels (BM3D over ``cpus`` workers)."""
        image_mb = max_px * 4 / 2**20
        if kind.runs_on == "io":
            return Estimate(5 + test_mpx * 0.05, BASE_MEM_MB + 4 * image_mb, None, "I/O only")
        if kind.classical:
            name = str(kind.calibration)
            fig = self.cal.infer(name if self.cal.has("infer", name) else "bm3d", "cpu")
            workers = max(1, cpus)
            mem = BASE_MEM_MB + workers * 40 * image_mb  # BM3D holds ~40 image-sized buffers
            return Estimate(fig.value * test_mpx / workers, mem, None, fig.source)
        parsed = parse_method(self.settings, method)
        if parsed is None:
            raise FmdenoiseError(f"predict: {method!r} is neither a baseline nor a model method")
        model = parsed.model
        arch = self.settings.models[model].arch
        fig = self.cal.infer(arch, device)
        per_mpx, note = self._scaled(fig, model)
        tile = inference_tile(self.settings, model)  # None: the whole image
        # overlapping tiles process more pixels than the image has (512 px tiles overlapping by
        # 64 on a 2048x2048 image: 1.56x); one tile is held at a time
        per_mpx *= tiling_overhead(max_px, tile, self.overlap)
        weights_mb = 4 * self.parameters(model) / 2**20
        held_mpx = min(max_px, tile * tile if tile else max_px) / 1e6
        act_mb = self.activation_mb(arch, device, fig, weights_mb) * held_mpx
        host = BASE_MEM_MB + weights_mb + 4 * image_mb
        if device == "cuda":
            gpu = weights_mb + act_mb
            return Estimate(per_mpx * test_mpx + 30, host, gpu, note)
        return Estimate(per_mpx * test_mpx + 10, host + act_mb, None, note)

    @property
    def overlap(self) -> int:
        return int(self.settings.evaluation.overlap)

    def activation_mb(self, arch: str, device: str, fig: Figure, weights_mb: float) -> float:
        """Inference memory per megapixel held, beyond the weights: from the measured peak on
        this device, else (GPU) from the CPU's measured peak at half the bytes (bf16)."""
        if fig.peak_mem_mb is not None and fig.mpx:
            base = BASE_MEM_MB if device == "cpu" else 0.0
            return max(0.0, fig.peak_mem_mb - base - weights_mb) / fig.mpx
        try:
            cpu = self.cal.infer(arch, "cpu")
        except FmdenoiseError:
            return 0.0
        if cpu.peak_mem_mb is None or not cpu.mpx:
            return 0.0
        return 0.5 * max(0.0, cpu.peak_mem_mb - BASE_MEM_MB - weights_mb) / cpu.mpx

    def transfer_predict(self, model: str, sizes: Sequence[Any], device: str) -> Estimate:
        """A ``transfer_predict`` job: ``model``'s inference on each of ``sizes``' test sets
        (datasets' :class:`~fmdenoise.costs.sizes.DatasetSize`), one after the other."""
        cpus = int(entry(self.settings, "transfer_predict").cpus)
        kind = METHOD_KINDS["finetuned"]
        parts = [
            self.predict(model, kind, size.test_mpx, size.max_image_px, device, cpus)
            for size in sizes
        ]
        return _in_turn(parts)

    def transfer_scores(self, sizes: Sequence[Any]) -> Estimate:
        """A ``transfer`` job: the metrics of each of ``sizes``' test sets, on CPUs."""
        return _in_turn([self.data_rule("metrics", 2 * s.test_mpx, s.max_image_px) for s in sizes])

    def data_rule(self, name: str, mpx: float, max_px: int) -> Estimate:
        """ingest / patches / metrics: measured s/Mpx x megapixels; memory from the
        largest image (a few image-sized buffers) and, for patches, the arrays it builds."""
        fig = self.cal.rule(name)
        image_mb = max_px * 4 / 2**20
        mem = BASE_MEM_MB + 8 * image_mb
        return Estimate(FIXED_SECONDS + fig.value * mpx, mem, None, fig.source)

    def download(self, nbytes: float) -> Estimate:
        rate = float(self.settings.planning.download_mb_per_s) * 2**20
        return Estimate(30 + nbytes / rate, 500.0, None, "assumed bandwidth")

    def extract(self, nbytes: float) -> Estimate:
        return Estimate(10 + nbytes / (200 * 2**20), 500.0, None, "assumed disk throughput")

    def small(self) -> Estimate:
        return Estimate(SMALL_JOB["seconds"], SMALL_JOB["mem_mb"], None, "assumed")


def _in_turn(parts: Sequence[Estimate]) -> Estimate:
    """Jobs' parts run one after the other: their seconds add, their memory does not."""
    gpu = [p.gpu_mem_mb for p in parts if p.gpu_mem_mb is not None]
    return Estimate(
        sum(p.seconds for p in parts),
        max((p.mem_mb for p in parts), default=BASE_MEM_MB),
        max(gpu) if gpu else None,
        parts[0].source if parts else "assumed",
    )


def request(
    settings: StudySettings, rule: str, estimate: Estimate | None = None, *, gpu: int | None = None
) -> dict[str, Any]:
    """The resource request of one job of ``rule``, as the rules make it and the plan prices it.

    A sized rule (:data:`~fmdenoise.costs.rules.RULES`: ingest, patches, predict, metrics, the
    transfer's two) asks
    for ``ceil(estimate x planning.margin)``, never below its config entry; every other rule for
    its entry's values as they stand (its estimate, if any, is the plan's, which flags a job
    whose estimate exceeds the request). Runtime in minutes, capped at the entry's
    ``time_limit``; ``submissions``: how many chained submissions that implies, ``signal``: the
    sbatch argument asking for SIGTERM ahead of the limit, or None
    (:mod:`fmdenoise.costs.time_limits`). ``gpu``: the job's GPUs where they depend on the job
    (a predict job's method), else the rule's (:func:`~fmdenoise.costs.rules.rule_gpus`)."""
    floor = entry(settings, rule)
    need, mem = int(floor.runtime), int(floor.mem_mb)
    if rule_of(rule).sized:
        if estimate is None:
            raise FmdenoiseError(f"rule {rule!r}: a sized rule's request needs its estimate")
        margin = float(settings.planning.margin)
        need = max(need, math.ceil(estimate.seconds * margin / 60))
        mem = max(mem, math.ceil(estimate.mem_mb * margin))
    chained = rule_chain(settings, rule, need)  # a partition's time limit (time_limits)
    return {
        "cpus": int(floor.cpus),
        "mem_mb": mem,
        "runtime": chained.runtime,
        "gpu": rule_gpus(settings, rule) if gpu is None else int(gpu),
        "submissions": chained.submissions,
        "signal": chained.signal,
    }
