"""What the SLURM site allows, read before submitting: partitions and their time limits.

:func:`partition_limits` asks ``sinfo`` (when it is on the PATH and answers) for every
partition's ``MaxTime``; :func:`check_rules` compares each rule's runtime request with the limit
of the partition it goes to (``resources.<rule>.slurm_partition``, else the site's default) and
says what to set when a request does not fit, before anything is submitted.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping
from typing import Any

from fmdenoise.plan.time_limits import RESOURCES_OF, RESUMABLE

#: the name :func:`partition_limits` gives the default partition (``sinfo`` marks it with *)
DEFAULT = "*"


def parse_time(text: str) -> int | None:
    """A SLURM time (``infinite``, ``MM:SS``, ``HH:MM:SS``, ``D-HH[:MM[:SS]]``) in whole
    minutes (seconds rounded down); None for no limit."""
    text = text.strip()
    if text.lower() in ("infinite", "unlimited", "n/a", ""):
        return None
    days, _, rest = text.rpartition("-")
    parts = [int(p) for p in rest.split(":")]
    if days:  # D-HH, D-HH:MM, D-HH:MM:SS
        parts += [0] * (3 - len(parts))
        hours, minutes, _seconds = parts
        return int(days) * 1440 + hours * 60 + minutes
    if len(parts) == 3:
        return parts[0] * 60 + parts[1]
    if len(parts) == 2:  # MM:SS
        return parts[0]
    return parts[0]  # minutes


def parse_sinfo(output: str) -> dict[str, int | None]:
    """``sinfo -h -o '%P %l'`` lines -> {partition: minutes or None}; the default partition
    also under :data:`DEFAULT`."""
    limits: dict[str, int | None] = {}
    for line in output.splitlines():
        fields = line.split()
        if len(fields) != 2:
            continue
        name, limit = fields
        minutes = parse_time(limit)
        if name.endswith("*"):
            name = name.rstrip("*")
            limits[DEFAULT] = minutes
        limits[name] = minutes
    return limits


def partition_limits(timeout: float = 10.0) -> dict[str, int | None] | None:
    """Every partition's MaxTime from ``sinfo``, or None when there is no SLURM to ask."""
    if shutil.which("sinfo") is None:
        return None
    try:
        proc = subprocess.run(
            ["sinfo", "-h", "-o", "%P %l"], capture_output=True, text=True, timeout=timeout
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_sinfo(proc.stdout) if proc.returncode == 0 else None


def check_rules(
    config: Mapping[str, Any],
    runtimes: Mapping[str, int],
    limits: Mapping[str, int | None],
) -> list[str]:
    """One line per rule whose runtime request (minutes, per submission) exceeds its
    partition's MaxTime, saying what to set; and one per partition the config names that the
    site does not have."""
    res = config["resources"]
    notes = []
    for rule, runtime in runtimes.items():
        own = res.get(RESOURCES_OF.get(rule, rule)) or {}
        partition = own.get("slurm_partition") or res["default"].get("slurm_partition") or ""
        key = partition or DEFAULT
        if key not in limits:
            if partition:
                notes.append(f"{rule}: partition {partition!r} is not on this site (sinfo)")
            continue
        limit = limits[key]
        if limit is None or runtime <= limit:
            continue
        where = f"partition {partition!r}" if partition else "the default partition"
        if rule in RESUMABLE:
            fix = f"set resources.{RESOURCES_OF.get(rule, rule)}.time_limit: {limit} to chain it"
        else:
            fix = "pick a partition with a longer MaxTime (resources.<rule>.slurm_partition)"
        notes.append(
            f"{rule}: runtime request {runtime} min exceeds {where}'s MaxTime {limit} min; {fix}"
        )
    return notes


__all__ = ["DEFAULT", "check_rules", "parse_sinfo", "parse_time", "partition_limits"]
