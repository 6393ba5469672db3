"""Study configuration: loading, JSON-schema validation with defaults, and cross-key checks.

The schema (``schemas/config.schema.yaml``) is the single description of every key; the
Snakefile validates with :func:`snakemake.utils.validate` against the same file and then calls
:func:`check_config` for the rules a schema cannot express (references between sections).
Every error names the offending key as a dotted path. The library computes with the typed
view of a validated config (:class:`fmdenoise.settings.StudySettings`, :func:`load_settings`).
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from fmdenoise.errors import ConfigError
from fmdenoise.settings import StudySettings

SCHEMA_FILE = "config.schema.yaml"


def schema_path() -> Path:
    """Path of the config JSON schema shipped inside the package."""
    return Path(str(resources.files("fmdenoise") / "schemas" / SCHEMA_FILE))


def load_schema() -> dict[str, Any]:
    return yaml.safe_load(schema_path().read_text())


def _with_defaults(validator_class: Any) -> Any:
    """Extend a jsonschema validator so that ``default`` values are filled in (deep copies)."""
    validate_props = validator_class.VALIDATORS["properties"]

    def set_defaults(validator: Any, properties: dict, instance: Any, schema: dict) -> Any:
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_props(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def _key_path(error: jsonschema.ValidationError) -> str:
    parts = [str(p) for p in error.absolute_path]
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        schema = error.schema if isinstance(error.schema, Mapping) else {}
        allowed = set(schema.get("properties", {}))
        extra = sorted(k for k in error.instance if k not in allowed)
        if extra and allowed:
            parts.append(extra[0])
    return ".".join(parts) or "<top level>"


def validate(config: dict[str, Any], source: str = "config") -> dict[str, Any]:
    """Validate ``config`` in place (defaults filled in) and return it.

    Raises :class:`ConfigError` whose message starts with ``source: key.path:``.
    """
    schema = load_schema()
    cls = _with_defaults(jsonschema.validators.validator_for(schema))
    validator = cls(schema)
    # Two passes: defaults can create objects whose own defaults are then filled in.
    for _ in range(2):
        errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
        if errors:
            err = errors[0]
            raise ConfigError(f"{source}: {_key_path(err)}: {err.message}")
    check_config(config, source)
    return config


def folder_urls(config: Mapping[str, Any], key: str) -> list[str]:
    """The base URLs of folder download ``key``, in the order they are tried: its url (or
    ``hagen_url``), then its mirrors (or ``hagen_mirrors`` when it names no url)."""
    spec = config["downloads"][key]
    if spec.get("url"):
        return [spec["url"], *(spec.get("mirrors") or [])]
    mirrors = spec.get("mirrors")
    return [config["hagen_url"], *(config.get("hagen_mirrors", []) if mirrors is None else mirrors)]


def source_kind(config: Mapping[str, Any], dataset: str) -> str:
    """``archive`` or ``folder``: the kind of dataset ``dataset``'s source."""
    return config["downloads"][config["datasets"][dataset]["source"]].get("kind", "archive")


#: the grid's lists of dataset names (each a subset of ``datasets``; null = every dataset)
DATASET_LISTS = ("study_datasets", "sweep_datasets", "seed_datasets")


def restrict_datasets(config: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """``config`` (changed in place and returned) with only the datasets ``names``, and the
    grid's dataset lists (:data:`DATASET_LISTS`) cut to them: a list left empty becomes null
    (every kept dataset), so that a reduced config (a rehearsal, a test) still runs every
    rule on what it keeps."""
    config["datasets"] = {n: config["datasets"][n] for n in names}
    grid = config.get("grid", {})
    for key in DATASET_LISTS:
        if grid.get(key) is not None:
            grid[key] = [n for n in grid[key] if n in names] or None
    return config


def check_config(config: dict[str, Any], source: str = "config") -> None:
    """Cross-key checks the schema cannot express. Raises :class:`ConfigError`."""
    downloads = config.get("downloads", {})
    for key, spec in downloads.items():
        folder = spec.get("kind") == "folder"
        if not folder and not spec.get("url"):
            raise ConfigError(f"{source}: downloads.{key}.url: required (only a folder has none)")
        if not folder and spec.get("mirrors"):
            raise ConfigError(f"{source}: downloads.{key}.mirrors: only a folder has mirrors")
        if isinstance(spec.get("sha256"), dict) != folder and spec.get("sha256") is not None:
            raise ConfigError(
                f"{source}: downloads.{key}.sha256: "
                + (
                    "a folder's is a mapping {path under the folder: sha256}"
                    if folder
                    else "one sha256 (a mapping is for a folder's files)"
                )
            )
    for name, ds in config.get("datasets", {}).items():
        if ds["source"] not in downloads:
            raise ConfigError(
                f"{source}: datasets.{name}.source: {ds['source']!r} is not a key of "
                f"downloads (known: {', '.join(sorted(downloads))})"
            )
        if downloads[ds["source"]].get("kind", "archive") not in ("archive", "folder"):
            raise ConfigError(
                f"{source}: datasets.{name}.source: {ds['source']!r} is not an archive or a folder"
            )
    for name, model in config.get("models", {}).items():
        pre = model["pretrained"]
        if pre["source"] == "download":
            key = pre.get("download")
            if key not in downloads:
                raise ConfigError(
                    f"{source}: models.{name}.pretrained.download: {key!r} is not a key of "
                    "downloads"
                )
        if pre["source"] == "none" and model["arch"] != "care_unet":
            raise ConfigError(
                f"{source}: models.{name}.pretrained.source: 'none' is only for care_unet; "
                f"{model['arch']} is a fine-tuning model and needs weights"
            )
    norm = config.get("normalization", {})
    if norm and norm["low_percentile"] >= norm["high_percentile"]:
        raise ConfigError(
            f"{source}: normalization.low_percentile: must be below high_percentile "
            f"({norm['low_percentile']} >= {norm['high_percentile']})"
        )
    grid, training = config.get("grid", {}), config.get("training", {})
    for key in DATASET_LISTS:
        for name in grid.get(key) or []:
            if name not in config.get("datasets", {}):
                raise ConfigError(f"{source}: grid.{key}: {name!r} is not a dataset")
    if grid.get("search") == "halving":
        h, val_every, steps = grid["halving"], training["val_every"], training["steps"]
        min_steps = h["min_steps"]
        if not h.get("budgets") and min_steps % val_every:
            raise ConfigError(
                f"{source}: grid.halving.min_steps: {min_steps} is not a multiple of "
                f"training.val_every ({val_every}); every rung must end on a validation"
            )
        budgets = h.get("budgets") or []
        for b in budgets:
            if b % val_every:
                raise ConfigError(
                    f"{source}: grid.halving.budgets: {b} is not a multiple of "
                    f"training.val_every ({val_every}); every rung must end on a validation"
                )
        if budgets and (budgets != sorted(set(budgets)) or budgets[-1] >= steps):
            raise ConfigError(
                f"{source}: grid.halving.budgets: {budgets} must increase and stay below "
                f"training.steps ({steps}, the last rung's budget)"
            )
    synth = config.get("synthetic_source")
    if synth:
        for name in config.get("datasets", {}):
            if name not in synth["datasets"]:
                raise ConfigError(
                    f"{source}: datasets.{name}: not in synthetic_source.datasets "
                    "(the demo source only makes those)"
                )


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file and validate it (see :func:`validate`)."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read config ({exc.strerror})") from exc
    try:
        config = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {exc}") from exc
    except ConfigError as exc:
        raise ConfigError(f"{p}: {exc}") from exc
    if not isinstance(config, dict):
        raise ConfigError(f"{p}: top level must be a mapping")
    return validate(config, source=str(p))


def load_settings(path: str | Path) -> StudySettings:
    """Read and validate a YAML config file (:func:`load_config`), as typed settings."""
    return StudySettings.from_config(load_config(path))


class _UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that refuses duplicate keys (a dataset listed twice is an error)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise ConfigError(f"duplicate key {key!r} at line {key_node.start_mark.line + 1}")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def check_output_folder(results: str | Path, source: str = "config") -> None:
    """The ``results`` folder can be created and written (checked on its nearest existing
    ancestor with a temporary file, so a dry run creates nothing that stays)."""
    path = Path(results).absolute()
    ancestor = path
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ConfigError(f"{source}: results: {results!r}: {ancestor} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=ancestor):
            pass
    except OSError as exc:
        raise ConfigError(
            f"{source}: results: {results!r} is not writable ({ancestor}: {exc.strerror})"
        ) from exc
