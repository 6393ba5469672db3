"""The real archive layout: one archive holding several datasets' stacks, read with the
config.yaml default globs ({dataset} placeholder), and `fmdenoise inspect-source` on it."""

from __future__ import annotations

import pytest
import yaml

from fmdenoise.cli import main
from fmdenoise.config import load_config
from fmdenoise.data.ingest import dataset_layout, ingest_dataset
from fmdenoise.data.inspect import inspect_source
from fmdenoise.errors import ImageError

from ..conftest import ROOT
from .test_ingest import stack

PAIRS = {"actin-60x-noise2": (7, 3), "mito-60x-noise2": (6, 2)}


def make_grouped_archive(root):
    """The public grouping: actin and mito of one magnification under one folder, named
    <dataset>-lowsnr.tif / -highsnr.tif, train and test sides, an authors' output on test."""
    folder = root / "60x-noise2"
    seed = 0
    for name, (n_train, n_test) in PAIRS.items():
        for side, n in (("train", n_train), ("test", n_test)):
            for role in ("lowsnr", "highsnr"):
                seed += 1
                stack(folder / side / f"{name}-{role}.tif", n, shape=(24, 32), seed=seed)
        stack(folder / "test" / f"{name}-care.tif", n_test, shape=(24, 32), seed=99)
    return root


@pytest.fixture(scope="module")
def real_config():
    return load_config(ROOT / "config.yaml")


def test_default_globs_name_the_dataset(real_config):
    for name, cfg in real_config["datasets"].items():
        layout = dataset_layout(name, cfg)
        for side in ("train", "test"):
            for role in ("low", "gt"):
                assert name in layout[side][role], (name, side, role)
        assert layout["archive"] == cfg["archive"]


def test_one_archive_two_datasets_default_globs(tmp_path, real_config):
    src = make_grouped_archive(tmp_path / "src")
    for name, (n_train, n_test) in PAIRS.items():
        layout = dataset_layout(name, real_config["datasets"][name])
        m = ingest_dataset(src, layout, tmp_path / name, val_fraction=0.15, seed=0)
        counts = m.groupby("split").size().to_dict()
        assert counts["test"] == 2 * n_test  # low + gt; 'care' is not in the default config
        assert counts["train"] + counts["val"] == 2 * n_train
        assert set(m["source"].str.split("#").str[0]) == {
            f"{name}-lowsnr.tif",
            f"{name}-highsnr.tif",
        }


def test_glob_matching_two_stacks_says_what_to_do(tmp_path):
    src = make_grouped_archive(tmp_path / "src")
    cfg = {
        "root": ".",
        "train": {"low": "**/train*/*lowsnr*.tif", "gt": "**/train*/*highsnr*.tif"},
        "test": {"low": "**/test*/*lowsnr*.tif", "gt": "**/test*/*highsnr*.tif"},
    }
    with pytest.raises(ImageError) as err:
        ingest_dataset(src, cfg, tmp_path / "out", val_fraction=0.15, seed=0)
    msg = str(err.value)
    assert "matches 2 files" in msg and "stack of" in msg
    assert "{dataset}" in msg and "inspect-source" in msg
    assert not (tmp_path / "out").exists()


def test_inspect_source_reports_findings(tmp_path, real_config):
    src = make_grouped_archive(tmp_path / "src")
    report = inspect_source(src, real_config)
    files = {f.path: f for f in report["files"]}
    assert files["60x-noise2/train/actin-60x-noise2-lowsnr.tif"].pages == 7
    assert files["60x-noise2/test/mito-60x-noise2-highsnr.tif"].shape == (24, 32)
    assert report["suggested"] == sorted(PAIRS)
    found = {(f.dataset, f.role): f for f in report["findings"]}
    assert found[("actin-60x-noise2", "train.low")].images == 7
    assert found[("mito-60x-noise2", "test.gt")].images == 2
    assert all(found[(d, r)].error is None for d in PAIRS for r in ("train.gt", "test.gt"))
    assert found[("nucleus", "train.low")].error is not None  # not in this archive
    assert sorted(report["unclaimed"]) == [
        "60x-noise2/test/actin-60x-noise2-care.tif",
        "60x-noise2/test/mito-60x-noise2-care.tif",
    ]


def test_inspect_source_cli(tmp_path, capsys):
    src = make_grouped_archive(tmp_path / "src")
    assert main(["inspect-source", str(src), "--config", str(ROOT / "config.yaml")]) == 0
    out = capsys.readouterr().out
    assert "dataset actin-60x-noise2: OK" in out and "dataset mito-60x-noise2: OK" in out
    assert "train.low" in out and "7 image(s) from 1 file(s)" in out
    assert "files no glob claims" in out and "actin-60x-noise2-care.tif" in out
    assert "datasets whose globs match nothing here:" in out and "nucleus" in out
    # a mismatched pair is reported as a problem, with the culprit named
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    cfg["datasets"]["actin-60x-noise2"]["test"]["gt"] = "**/train*/{dataset}-highsnr.tif"
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    args = ["inspect-source", str(src), "--config", str(tmp_path / "c.yaml")]
    assert main([*args, "--dataset", "actin-60x-noise2"]) == 0
    out = capsys.readouterr().out
    assert "dataset actin-60x-noise2: PROBLEM" in out and "no noisy partner" in out
    assert main([*args, "--dataset", "nope"]) == 2
    assert "not a dataset of the config" in capsys.readouterr().err


def test_inspect_source_without_config(tmp_path, capsys):
    src = make_grouped_archive(tmp_path / "src")
    (src / "broken.tif").write_bytes(b"not a tiff")
    assert main(["inspect-source", str(src)]) == 0
    out = capsys.readouterr().out
    assert "11 TIFF file(s)" in out and "broken.tif: " in out
    assert "actin-60x-noise2, mito-60x-noise2" in out
