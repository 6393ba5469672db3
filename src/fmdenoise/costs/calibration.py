"""The calibration table: measured costs per device type, and estimates where none was measured.

A CSV with one row per measurement (columns :data:`COLUMNS`), written by :func:`calibrate`
(``fmdenoise calibrate``) on the machine it describes; the package ships the table measured on
the development machine's CPU (``calibration.csv`` beside this module) and the GPU rows measured
where a GPU was lent. :class:`Calibration` answers "seconds per training step", "seconds per
megapixel" and "peak memory" for a device type. Where a GPU figure was not measured it is
derived from the architecture's forward FLOPs and a named device throughput
(:data:`REFERENCE_GPU`) and every such number is flagged ``estimate``: measured and estimated
figures are never mixed silently.
"""

from __future__ import annotations

import csv
import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from importlib.resources import files
from pathlib import Path
from typing import Any

from fmdenoise.errors import FmdenoiseError
from fmdenoise.io import write_text

COLUMNS = [
    "kind",
    "name",
    "device_type",
    "device",
    "precision",
    "batch",
    "patch",
    "tile",
    "mpx",
    "value",
    "unit",
    "peak_mem_mb",
    "threads",
    "torch",
    "source",
    "note",
]

#: The device GPU estimates are derived for: name, dense bf16 throughput, assumed utilisation
#: (a fraction of peak that these convolution/attention networks reach in training).
REFERENCE_GPU: dict[str, Any] = {
    "device": "NVIDIA A100 80GB (estimate)",
    "tflops_bf16": 312.0,
    "utilization": 0.25,
}
#: Training step = forward + backward, about three forwards.
TRAIN_FLOP_FACTOR = 3.0


def shipped_table() -> Path:
    """The calibration table shipped with the package."""
    return Path(str(files("fmdenoise") / "costs" / "calibration.csv"))


@dataclasses.dataclass(frozen=True)
class Figure:
    """A cost with where it came from."""

    value: float
    peak_mem_mb: float | None
    source: str  # "measured <device>" or "estimate (...)"
    mpx: float | None = None  # image size the peak memory was measured at (inference)

    @property
    def estimated(self) -> bool:
        return self.source.startswith("estimate")


class Calibration:
    """Lookups in a calibration table (see the module docstring)."""

    def __init__(self, rows: Iterable[Mapping[str, Any]]) -> None:
        self.rows = [dict(r) for r in rows]

    @classmethod
    def load(cls, path: str | Path | None = None) -> Calibration:
        path = Path(path) if path else shipped_table()
        try:
            with path.open(newline="") as fh:
                rows = list(csv.DictReader(fh))
        except OSError as exc:
            raise FmdenoiseError(f"{path}: cannot read the calibration table ({exc})") from exc
        missing = [c for c in ("kind", "name", "device_type", "value") if rows and c not in rows[0]]
        if missing:
            raise FmdenoiseError(f"{path}: not a calibration table (no column {missing[0]!r})")
        return cls(rows)

    def _find(self, kind: str, name: str, device_type: str, **match: Any) -> dict[str, Any] | None:
        for row in self.rows:
            if (row["kind"], row["name"], row["device_type"]) != (kind, name, device_type):
                continue
            if all(str(row.get(k) or "") == str(v or "") for k, v in match.items()):
                return row
        return None

    def has(self, kind: str, name: str) -> bool:
        """Whether the table holds any row of ``kind`` for ``name``."""
        return any((r["kind"], r["name"]) == (kind, name) for r in self.rows)

    def gflop(self, arch: str) -> float:
        """Forward GFLOP of the full-size ``arch`` at 128x128."""
        return self._constant("flops", arch)

    def parameters(self, arch: str) -> int:
        """Parameters of the full-size ``arch``."""
        return int(self._constant("params", arch))

    def _constant(self, kind: str, arch: str) -> float:
        row = next((r for r in self.rows if (r["kind"], r["name"]) == (kind, arch)), None)
        if row is None:
            raise FmdenoiseError(f"calibration table: no {kind} row for {arch!r}")
        return float(row["value"])

    def train_step(
        self, arch: str, device_type: str, batch: int, patch: int, compiled: bool = False
    ) -> Figure:
        """Seconds per training step at (batch, patch): a measured row scaled linearly in the
        number of pixels per batch, else (GPU) an estimate from the FLOPs. ``compiled``
        (``training.compile``): the compiled row where one was measured, else the eager one."""
        rows = [
            r
            for r in self.rows
            if (r["kind"], r["name"], r["device_type"]) == ("train", arch, device_type)
        ]
        if rows:
            # the variant training runs: channels_last, compiled with training.compile (else
            # eager); bf16 on CUDA, the same patch, the largest batch
            eager = [r for r in rows if not r.get("note") or r["note"] == "channels_last"]
            fast = [r for r in rows if str(r.get("note") or "").startswith("channels_last, comp")]
            rows = (fast if compiled else []) or eager or rows
            rows.sort(
                key=lambda r: (
                    r.get("precision") != "bf16",
                    int(r["patch"]) != patch,
                    -int(r["batch"]),
                )
            )
            r = rows[0]
            scale = batch * patch**2 / (int(r["batch"]) * int(r["patch"]) ** 2)
            mem = _float(r.get("peak_mem_mb"))
            source = f"measured {r['device']} (batch {r['batch']}, {r['patch']} px"
            source += ", scaled)" if scale != 1 else ")"
            return Figure(float(r["value"]) * scale, mem * max(scale, 1.0) if mem else None, source)
        if device_type != "cuda":
            raise FmdenoiseError(f"calibration table: no {device_type} training row for {arch!r}")
        flop = TRAIN_FLOP_FACTOR * self.gflop(arch) * (patch / 128) ** 2 * batch * 1e9
        return Figure(flop / _gpu_flops(), None, _estimate_note())

    def infer(self, method: str, device_type: str) -> Figure:
        """Seconds per megapixel of a method (an architecture, or ``bm3d``)."""
        if method.startswith("bm3d"):
            device_type = "cpu"
        row = self._find("infer", method, device_type)
        if row is not None:
            peak, mpx = _float(row.get("peak_mem_mb")), _float(row.get("mpx"))
            return Figure(float(row["value"]), peak, f"measured {row['device']}", mpx)
        if device_type != "cuda" or method.startswith("bm3d"):
            raise FmdenoiseError(
                f"calibration table: no {device_type} inference row for {method!r}"
            )
        flop = self.gflop(method) * 1e9 / (128 * 128 / 1e6)  # FLOP per megapixel
        return Figure(flop / _gpu_flops(), None, _estimate_note())

    def rule(self, name: str) -> Figure:
        """Seconds per megapixel of a data rule (ingest, patches, metrics), measured on CPU."""
        row = self._find("rule", name, "cpu")
        if row is None:
            raise FmdenoiseError(f"calibration table: no row for rule {name!r}")
        mem = _float(row.get("peak_mem_mb"))
        return Figure(float(row["value"]), mem, f"measured {row['device']}")

    def rule_mem_per_mpx(self, name: str) -> tuple[float, float]:
        """(base MB, MB per megapixel held) of a data rule, from its measured row."""
        row = self._find("rule", name, "cpu")
        if row is None:
            raise FmdenoiseError(f"calibration table: no row for rule {name!r}")
        return float(row.get("peak_mem_mb") or 0.0), float(row.get("mpx") or 0.0)


def _float(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(out) else out


def _gpu_flops() -> float:
    return REFERENCE_GPU["tflops_bf16"] * 1e12 * REFERENCE_GPU["utilization"]


def _estimate_note() -> str:
    return (
        f"estimate ({REFERENCE_GPU['device']}, {REFERENCE_GPU['tflops_bf16']:g} TFLOP/s bf16 at "
        f"{REFERENCE_GPU['utilization']:.0%} utilisation, from FLOP counts)"
    )


def replace_rows(
    rows: Sequence[Mapping[str, Any]], new: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """``rows`` without those of any (kind, name, device_type) that ``new`` has, then ``new``:
    a table updated with fresher measurements."""
    keys = {(r["kind"], r["name"], r["device_type"]) for r in new}
    kept = [dict(r) for r in rows if (r["kind"], r["name"], r["device_type"]) not in keys]
    return kept + [dict(r) for r in new]


def write_table(rows: Sequence[Mapping[str, Any]], path: str | Path) -> None:
    """Write calibration rows as CSV (atomically), columns in :data:`COLUMNS` order."""
    lines = [",".join(COLUMNS)]
    for row in rows:
        cells = []
        for col in COLUMNS:
            value = row.get(col)
            text = (
                ""
                if value is None
                else (f"{value:.6g}" if isinstance(value, float) else str(value))
            )
            cells.append(f'"{text}"' if "," in text else text)
        lines.append(",".join(cells))
    write_text(path, "\n".join(lines) + "\n")
