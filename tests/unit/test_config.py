"""Config schema: both shipped configs validate; each kind of error names its key."""

from __future__ import annotations

import copy

import pytest
import yaml

from fmdenoise.config import load_config, validate
from fmdenoise.errors import ConfigError

from ..conftest import ROOT


@pytest.fixture(scope="module")
def demo() -> dict:
    return yaml.safe_load((ROOT / "demo" / "config.yaml").read_text())


def test_shipped_configs_validate_and_get_defaults():
    real = load_config(ROOT / "config.yaml")
    assert len(real["datasets"]) == 10
    assert real["training"]["optimizer"] == "adamw"
    demo = load_config(ROOT / "demo" / "config.yaml")
    assert demo["resources"]["train"]["cpus"] == 1  # filled from the schema default
    assert demo["downloads"]["hagen-demo"]["sha256"] is None


@pytest.mark.parametrize(
    ("mutate", "key", "fragment"),
    [
        (lambda c: c.update(surprise=1), "surprise", "Additional properties"),
        (lambda c: c["patches"].update(size="big"), "patches.size", "not of type"),
        (lambda c: c["patches"].update(size=20), "patches.size", "multiple of 16"),
        (
            lambda c: c["grid"].update(learning_rates=[0.0]),
            "grid.learning_rates.0",
            "less than or equal",
        ),
        (
            lambda c: c["grid"].update(learning_rates=[]),
            "grid.learning_rates",
            "should be non-empty",
        ),
        (lambda c: c["grid"].update(losses=["huber"]), "grid.losses.0", "is not one of"),
        (
            lambda c: c["models"]["drunet"].update(arch="unet9"),
            "models.drunet.arch",
            "is not one of",
        ),
        (
            lambda c: c["datasets"]["actin-demo"].update(source="nope"),
            "datasets.actin-demo.source",
            "not a key of downloads",
        ),
        (
            lambda c: c["split"].update(val_fraction=1.5),
            "split.val_fraction",
            "greater than or equal",
        ),
        (
            lambda c: c["normalization"].update(low_percentile=99.95),
            "normalization.low_percentile",
            "must be below",
        ),
        (
            lambda c: c["downloads"]["hagen-demo"].update(sha256="abc"),
            "downloads.hagen-demo.sha256",
            "does not match",
        ),
    ],
)
def test_errors_name_the_key(demo, mutate, key, fragment):
    cfg = copy.deepcopy(demo)
    mutate(cfg)
    with pytest.raises(ConfigError) as err:
        validate(cfg, source="demo.yaml")
    msg = str(err.value)
    assert msg.startswith(f"demo.yaml: {key}:"), msg
    assert fragment in msg


def test_duplicate_dataset_is_an_error(tmp_path):
    text = (ROOT / "demo" / "config.yaml").read_text()
    text = text.replace("  mito-demo:\n", "  actin-demo:\n", 1)
    (tmp_path / "c.yaml").write_text(text)
    with pytest.raises(ConfigError, match="duplicate key 'actin-demo'"):
        load_config(tmp_path / "c.yaml")
