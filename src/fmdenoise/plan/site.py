"""What the SLURM site allows, read before submitting: partitions, time limits, queue limits.

:func:`partition_limits` asks ``sinfo`` (when it is on the PATH and answers) for every
partition's ``MaxTime``; :func:`check_rules` compares each rule's runtime request with the limit
of the partition it goes to (``resources.<rule>.slurm_partition``, else the site's default) and
says what to set when a request does not fit, before anything is submitted.
:func:`partition_nodes` reads every partition's node shapes (CPUs, memory, GPUs; ``sinfo -e``)
and :func:`check_fit` names each rule whose CPUs, memory or GPUs no node of its partition has:
SLURM accepts such a job and keeps it pending for ever (``Reason=PartitionConfig``), and the
run waits on it without an error.

:func:`queue_limits` reads how many jobs the site lets one user queue: ``MaxJobCount`` and
``MaxArraySize`` from ``scontrol show config``, the user's association and QOS
``MaxSubmitJobs`` from ``sacctmgr`` (sites with accounting), else the config's ``site:``
section; :func:`queue_bound` turns them into the ``--jobs`` bound that keeps every submission
within them.
"""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from typing import Any

from fmdenoise.costs.rules import entry, entry_name, rule_of
from fmdenoise.settings import StudySettings

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


def _run(cmd: list[str], timeout: float) -> str | None:
    """The standard output of a SLURM command, or None when it is absent or fails."""
    if shutil.which(cmd[0]) is None:
        return None
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout if proc.returncode == 0 else None


def partition_limits(timeout: float = 10.0) -> dict[str, int | None] | None:
    """Every partition's MaxTime from ``sinfo``, or None when there is no SLURM to ask."""
    out = _run(["sinfo", "-h", "-o", "%P %l"], timeout)
    return None if out is None else parse_sinfo(out)


def parse_gres_gpus(field: str) -> int:
    """The GPU count in a ``sinfo %G`` field (``gpu:2``, ``gpu:a100:4(S:0-1)``,
    ``gpu:v100:2,mps:200``; ``(null)`` is none)."""
    total = 0
    for item in field.split(","):
        parts = item.split("(")[0].split(":")
        if parts[0] == "gpu" and len(parts) > 1 and parts[-1].isdigit():
            total += int(parts[-1])
    return total


def parse_sinfo_nodes(output: str) -> dict[str, list[dict[str, int]]]:
    """``sinfo -h -e -o '%P %c %m %G'`` lines (one per partition and node configuration) ->
    {partition: [{"cpus", "mem_mb", "gpus"}, ...]}; the default partition also under
    :data:`DEFAULT`. A trailing ``+`` (nodes differ) is read as the smallest value."""
    nodes: dict[str, list[dict[str, int]]] = {}
    for line in output.splitlines():
        fields = line.split()
        if len(fields) != 4:
            continue
        name, cpus, mem, gres = fields
        cpus, mem = cpus.rstrip("+"), mem.rstrip("+")
        if not (cpus.isdigit() and mem.isdigit()):
            continue
        shape = {"cpus": int(cpus), "mem_mb": int(mem), "gpus": parse_gres_gpus(gres)}
        names = [name.rstrip("*"), DEFAULT] if name.endswith("*") else [name]
        for n in names:
            nodes.setdefault(n, []).append(shape)
    return nodes


def partition_nodes(timeout: float = 10.0) -> dict[str, list[dict[str, int]]] | None:
    """Every partition's node shapes from ``sinfo``, or None when there is no SLURM to ask."""
    out = _run(["sinfo", "-h", "-e", "-o", "%P %c %m %G"], timeout)
    return None if out is None else parse_sinfo_nodes(out)


def rule_partition(settings: StudySettings, rule: str) -> str:
    """The partition a rule's jobs go to ("" for the site's default)."""
    own = entry(settings, rule)
    return own.slurm_partition or settings.resources.default.slurm_partition or ""


def check_fit(
    settings: StudySettings,
    requests: Mapping[str, Mapping[str, float]],
    nodes: Mapping[str, Sequence[Mapping[str, int]]],
) -> list[str]:
    """One line per rule whose largest request (``cpus``, ``mem_mb``, ``gpu`` per job) no node
    of its partition can hold, saying what to change."""
    notes = []
    for rule, req in requests.items():
        partition = rule_partition(settings, rule)
        shapes = nodes.get(partition or DEFAULT)
        if not shapes:
            continue  # an unknown partition is reported by check_rules
        cpus, mem, gpus = int(req["cpus"]), int(req["mem_mb"]), int(req.get("gpu") or 0)
        if any(s["cpus"] >= cpus and s["mem_mb"] >= mem and s["gpus"] >= gpus for s in shapes):
            continue
        big = max(shapes, key=lambda s: (s["cpus"], s["mem_mb"], s["gpus"]))
        where = f"partition {partition!r}" if partition else "the default partition"
        notes.append(
            f"{rule}: a job asks for {cpus} CPUs, {mem} MB and {gpus} GPU(s); no node of {where} "
            f"has that (largest: {big['cpus']} CPUs, {big['mem_mb']} MB, {big['gpus']} GPUs), so "
            "SLURM would keep it pending for ever (Reason=PartitionConfig); lower "
            f"resources.{entry_name(rule)}.cpus/mem_mb/gpu or pick another partition"
        )
    return notes


def check_rules(
    settings: StudySettings,
    runtimes: Mapping[str, int],
    limits: Mapping[str, int | None],
) -> list[str]:
    """One line per rule whose runtime request (minutes, per submission) exceeds its
    partition's MaxTime, saying what to set; and one per partition the config names that the
    site does not have."""
    notes = []
    for rule, runtime in runtimes.items():
        partition = rule_partition(settings, rule)
        key = partition or DEFAULT
        if key not in limits:
            if partition:
                notes.append(f"{rule}: partition {partition!r} is not on this site (sinfo)")
            continue
        limit = limits[key]
        if limit is None or runtime <= limit:
            continue
        where = f"partition {partition!r}" if partition else "the default partition"
        if rule_of(rule).resumable:
            fix = f"set resources.{entry_name(rule)}.time_limit: {limit} to chain it"
        else:
            fix = "pick a partition with a longer MaxTime (resources.<rule>.slurm_partition)"
        notes.append(
            f"{rule}: runtime request {runtime} min exceeds {where}'s MaxTime {limit} min; {fix}"
        )
    return notes


#: the executor profile's own bound (profiles/slurm: ``jobs: 100``)
PROFILE_JOBS = 100


def parse_scontrol_config(output: str) -> dict[str, int]:
    """``scontrol show config`` -> the queue limits in it (``MaxJobCount``, ``MaxArraySize``)."""
    found = {}
    for line in output.splitlines():
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if sep and key in ("MaxJobCount", "MaxArraySize") and value.split()[0].isdigit():
            found[key] = int(value.split()[0])
    return found


def parse_max_submit(output: str) -> int | None:
    """``sacctmgr -nP show assoc|qos ... format=MaxSubmitJobs[PerUser]`` lines -> the smallest
    limit set (an empty field is no limit); None when none is set."""
    values = [int(f) for line in output.splitlines() for f in line.split("|") if f.isdigit()]
    return min(values) if values else None


def queue_limits(config: Mapping[str, Any] | None = None, timeout: float = 10.0) -> dict:
    """The site's queue limits: ``MaxJobCount``, ``MaxArraySize`` (scontrol), ``MaxSubmitJobs``
    (the smallest of the user's associations and QOS, sacctmgr), each with where it came from;
    what SLURM does not answer comes from the config's ``site:`` section when set there."""
    limits: dict[str, Any] = {}
    out = _run(["scontrol", "show", "config"], timeout)
    for key, value in parse_scontrol_config(out or "").items():
        limits[key] = {"value": value, "from": "scontrol show config"}
    user = os.environ.get("USER") or getpass.getuser()
    submit = [
        parse_max_submit(o or "")
        for o in (
            _run(["sacctmgr", "-nP", "show", "assoc", "where", f"user={user}",
                  "format=MaxSubmitJobs"], timeout),
            _run(["sacctmgr", "-nP", "show", "qos", "format=MaxSubmitJobsPerUser"], timeout),
        )
    ]  # fmt: skip
    answered = [v for v in submit if v is not None]
    if answered:
        limits["MaxSubmitJobs"] = {"value": min(answered), "from": "sacctmgr"}
    site = (config or {}).get("site") or {}
    for key, name in (("MaxSubmitJobs", "max_submit_jobs"), ("MaxArraySize", "max_array_size")):
        if key not in limits and site.get(name) is not None:
            limits[key] = {"value": int(site[name]), "from": f"config site.{name}"}
    return limits


def queue_bound(limits: Mapping[str, Mapping[str, Any]], profile_jobs: int = PROFILE_JOBS) -> int:
    """The ``--jobs`` bound that keeps one user's queue within the site's limits: the profile's
    own bound, at most ``MaxSubmitJobs`` and at most half of ``MaxJobCount`` (finished jobs stay
    counted there for ``MinJobAge``, and other users share it)."""
    bound = profile_jobs
    if "MaxSubmitJobs" in limits:
        bound = min(bound, int(limits["MaxSubmitJobs"]["value"]))
    if "MaxJobCount" in limits:
        bound = min(bound, int(limits["MaxJobCount"]["value"]) // 2)
    return max(1, bound)


__all__ = [
    "DEFAULT",
    "PROFILE_JOBS",
    "check_fit",
    "check_rules",
    "parse_gres_gpus",
    "parse_max_submit",
    "parse_scontrol_config",
    "parse_sinfo",
    "parse_sinfo_nodes",
    "parse_time",
    "partition_limits",
    "partition_nodes",
    "queue_bound",
    "queue_limits",
    "rule_partition",
]
