# Shared definitions: paths, wildcard constraints, input functions and resources.
import re
from pathlib import Path

from fmdenoise.download import local_file_url_path

RESULTS = config["results"]


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
    return [
        m for m, c in config["models"].items() if c["pretrained"]["source"] == source
    ]


wildcard_constraints:
    archive=alternatives(config["downloads"]),
    dataset=alternatives(config["datasets"]),
    split="train|val|test",


def resource(rule_name, key):
    """Resource ``key`` of a rule from config (falls back to resources.default)."""
    res = config["resources"]
    chosen = res.get(rule_name) or {}
    return chosen.get(key, res["default"][key])


def rule_resources(rule_name):
    return dict(
        mem_mb=resource(rule_name, "mem_mb"),
        runtime=resource(rule_name, "runtime"),
    )


def download_local_input(wildcards):
    """A ``file:rel`` URL under the results folder is an input (the rule making it runs first)."""
    url = config["downloads"][wildcards.archive]["url"]
    path = local_file_url_path(url, Path(RESULTS))
    if path is not None and not url.startswith("file://"):
        return [str(path)]
    return []


def ingest_source(wildcards):
    return f"{RESULTS}/sources/{config['datasets'][wildcards.dataset]['archive']}"


def checkpoint_download(wildcards):
    key = config["models"][wildcards.model]["pretrained"]["download"]
    return f"{RESULTS}/downloads/{key}"


def patch_files(dataset):
    return [
        f"{RESULTS}/patches/{dataset}/{split}_{role}.npy"
        for split in ("train", "val")
        for role in ("low", "gt")
    ]


def all_targets():
    targets = [f"{RESULTS}/data/{d}" for d in config["datasets"]]
    targets += [f"{RESULTS}/patches/{d}/patches.json" for d in config["datasets"]]
    targets += [
        f"{RESULTS}/pretrained/{m}.pt"
        for m in config["models"]
        if config["models"][m]["pretrained"]["source"] != "none"
    ]
    return targets
