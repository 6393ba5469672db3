"""The documentation's reference pages, generated from their single sources.

- :func:`config_reference`: every configuration key from ``schemas/config.schema.yaml``
  (type, default, description), one table per top-level section;
- :func:`cli_reference`: every ``fmdenoise`` subcommand and option from the argparse parsers.

``docs/gen_reference.py`` writes both into ``docs/reference/`` before ``mkdocs build``;
:func:`undocumented_keys` and :func:`undocumented_options` are what the tests check (every
key and option has a description).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator, Mapping
from typing import Any

from fmdenoise.config import load_schema


def _resolve(node: Mapping[str, Any], defs: Mapping[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        ref = defs[node["$ref"].split("/")[-1]]
        return {**ref, **{k: v for k, v in node.items() if k != "$ref"}}
    return dict(node)


def schema_keys(schema: Mapping[str, Any] | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(dotted key, schema node)`` of every key, depth first (``<name>``: a free name)."""
    schema = schema or load_schema()
    defs = schema.get("$defs", {})

    def walk(node: Mapping[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
        node = _resolve(node, defs)
        if path:
            yield path, node
        for key, child in (node.get("properties") or {}).items():
            yield from walk(child, f"{path}.{key}" if path else key)
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            yield from walk(extra, f"{path}.<name>")

    yield from walk(schema, "")


def undocumented_keys(schema: Mapping[str, Any] | None = None) -> list[str]:
    """Keys of the schema without a description."""
    return [path for path, node in schema_keys(schema) if not node.get("description")]


def _type(node: Mapping[str, Any]) -> str:
    if "enum" in node:
        return " \\| ".join(json.dumps(v) for v in node["enum"])
    kind = node.get("type", "")
    return " \\| ".join(kind) if isinstance(kind, list) else str(kind)


def _cell(text: Any) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def config_reference(schema: Mapping[str, Any] | None = None) -> str:
    """Markdown: one table per top-level section of the schema."""
    schema = schema or load_schema()
    required = set(schema.get("required", []))
    out = [
        "# Configuration reference",
        "",
        "Generated from `src/fmdenoise/schemas/config.schema.yaml` (`docs/gen_reference.py`);",
        "every key, its type, its default (filled in by the validator) and what it does.",
        f"Required top-level keys: {', '.join(f'`{k}`' for k in sorted(required))}.",
        "`<name>` stands for a name you choose (a dataset, a model, a download).",
    ]
    section = None
    for path, node in schema_keys(schema):
        top = path.split(".")[0]
        if top != section:
            section = top
            out += ["", f"## `{top}`", "", _cell(node.get("description", "")), ""]
            out += ["| key | type | default | description |", "| --- | --- | --- | --- |"]
        default = f"`{json.dumps(node['default'])}`" if "default" in node else ""
        out.append(
            f"| `{path}` | {_type(node)} | {default} | {_cell(node.get('description', ''))} |"
        )
    return "\n".join(out) + "\n"


def _subparsers(
    parser: argparse.ArgumentParser,
) -> dict[str, tuple[argparse.ArgumentParser, str]]:
    """``name -> (parser, description or one-line help)`` of every subcommand."""
    for action in parser._actions:  # argparse keeps them only here
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            return {
                name: (sub, sub.description or helps.get(name, ""))
                for name, sub in action.choices.items()
            }
    return {}


def _options(parser: argparse.ArgumentParser) -> Iterator[argparse.Action]:
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
            continue
        yield action


def undocumented_options(parser: argparse.ArgumentParser) -> list[str]:
    """``command option`` of every subcommand option (or subcommand) without a help text."""
    missing = []
    for name, (sub, description) in _subparsers(parser).items():
        if not description:
            missing.append(name)
        missing += [
            f"{name} {a.option_strings[0] if a.option_strings else a.dest}"
            for a in _options(sub)
            if not a.help
        ]
    return missing


def cli_reference(parser: argparse.ArgumentParser) -> str:
    """Markdown: every subcommand with its description, usage and options."""
    out = [
        "# Command-line reference",
        "",
        "Generated from the argparse parsers of `fmdenoise.cli` (`docs/gen_reference.py`);",
        "`fmdenoise COMMAND --help` prints the same.",
    ]
    for name, (sub, description) in _subparsers(parser).items():
        out += ["", f"## `fmdenoise {name}`", "", _cell(description), ""]
        out += ["```", sub.format_usage().strip(), "```", ""]
        out += ["| option | default | description |", "| --- | --- | --- |"]
        for action in _options(sub):
            flag = ", ".join(action.option_strings) or action.metavar or action.dest
            default = (
                f"`{action.default}`"
                if action.option_strings and action.default not in (None, False)
                else ""
            )
            out.append(f"| `{flag}` | {default} | {_cell(action.help or '')} |")
    return "\n".join(out) + "\n"
