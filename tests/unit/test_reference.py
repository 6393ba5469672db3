"""The documentation's references are generated from their sources and complete: every
configuration key and every command-line option has a description, and the committed pages
are what the generator writes."""

from __future__ import annotations

from fmdenoise.cli import _parser
from fmdenoise.reference import (
    cli_reference,
    config_reference,
    schema_keys,
    undocumented_keys,
    undocumented_options,
)

from ..conftest import ROOT


def test_every_config_key_has_a_description():
    assert undocumented_keys() == []


def test_every_cli_option_has_a_description():
    assert undocumented_options(_parser()) == []


def test_a_missing_description_is_found():
    schema = {"properties": {"a": {"type": "object", "properties": {"b": {"type": "integer"}}}}}
    assert undocumented_keys(schema) == ["a", "a.b"]


def test_references_list_every_key_and_command():
    text = config_reference()
    for path, _ in schema_keys():
        assert f"| `{path}` |" in text
    assert "| `split.test_fraction` | number \\| null | `0.1` |" in text
    cli = cli_reference(_parser())
    for command in ("plan", "rehearse", "inspect-source", "denoise", "export", "calibrate"):
        assert f"## `fmdenoise {command}`" in cli
    assert "`--offline`" in cli


def test_committed_references_are_up_to_date():
    assert (ROOT / "docs/reference/config.md").read_text() == config_reference(), (
        "docs/reference/config.md is stale: run `make docs`"
    )
    assert (ROOT / "docs/reference/cli.md").read_text() == cli_reference(_parser()), (
        "docs/reference/cli.md is stale: run `make docs`"
    )
