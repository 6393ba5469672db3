"""The published layout on disk (a local copy of the GigaDB folder, or an archive of it),
read with the config.yaml default globs ({dataset} placeholder), and `fmdenoise
inspect-source` on a folder."""

from __future__ import annotations

import pytest
import yaml

from fmdenoise.cli import main
from fmdenoise.config import load_config
from fmdenoise.data.download import extract
from fmdenoise.data.ingest import dataset_layout, ingest_dataset
from fmdenoise.data.inspect import inspect_source
from fmdenoise.errors import ImageError

from ..conftest import ROOT
from ..gigadb import PUBLISHED, make_published_tree


@pytest.fixture(scope="module")
def real_config():
    return load_config(ROOT / "config.yaml")


def test_default_globs_name_the_dataset(real_config):
    for name, cfg in real_config["datasets"].items():
        layout = dataset_layout(name, cfg)
        for side in ("train", "test"):
            for role in ("low", "gt"):
                assert name in layout[side][role], (name, side, role)
        assert layout["source"] == cfg["source"]


def ingest(src, name, config, out):
    return ingest_dataset(
        src, dataset_layout(name, config["datasets"][name]), out,
        val_fraction=0.15, seed=0, test_fraction=config["split"]["test_fraction"],
    )  # fmt: skip


def test_a_local_copy_and_an_archive_of_it_with_the_default_globs(tmp_path, real_config):
    src = make_published_tree(tmp_path / "copy")
    archive = tmp_path / "hagen.tar"
    import tarfile

    with tarfile.open(archive, "w") as tf:
        for path in sorted(src.rglob("*")):
            tf.add(path, path.relative_to(src).as_posix(), recursive=False)
    extracted = extract(archive, tmp_path / "extracted")
    for where in (src, extracted):
        for name, (_, pages, test_pages) in PUBLISHED.items():
            m = ingest(where, name, real_config, tmp_path / where.name / name)
            counts = m[m["role"] == "low"].groupby("split").size().to_dict()
            assert counts["test"] == (test_pages or round(0.1 * pages))
            # the dataset's own stacks only: never actin-confocal's for mito-confocal
            assert set(m["source"].str.split("#").str[0]) == {
                f"{name}-lowsnr.tif",
                f"{name}-highsnr.tif",
            }


def test_glob_matching_two_stacks_says_what_to_do(tmp_path):
    src = make_published_tree(tmp_path / "src")
    cfg = {
        "root": ".",
        "train": {"low": "*/*-lowsnr.tif", "gt": "*/*-highsnr.tif"},
        "test": {"low": "*/test*/*-lowsnr.tif", "gt": "*/test*/*-highsnr.tif"},
    }
    with pytest.raises(ImageError) as err:
        ingest_dataset(src, cfg, tmp_path / "out", val_fraction=0.15, seed=0)
    msg = str(err.value)
    assert "matches 3 files" in msg and "stack of" in msg
    assert "{dataset}" in msg and "inspect-source" in msg
    assert not (tmp_path / "out").exists()


def test_inspect_source_reports_findings(tmp_path, real_config):
    src = make_published_tree(tmp_path / "src")
    report = inspect_source(src, real_config)
    files = {f.path: f for f in report["files"]}
    assert files["03-actin-confocal/actin-confocal-lowsnr.tif"].pages == 10
    assert files["07-nucleus/test/nucleus-highsnr.tif"].shape == (24, 32)
    assert files["07-nucleus/test/nucleus-highsnr.tif"].dtype == "float32"
    assert report["suggested"] == sorted(PUBLISHED)
    found = {(f.dataset, f.role): f for f in report["findings"]}
    assert found[("mito-confocal", "train.low")].images == 12
    assert found[("mito-confocal", "test.low")].note.startswith("no test files")
    assert found[("nucleus", "test.gt")].images == 3
    assert all(found[(d, "train.gt")].error is None for d in PUBLISHED)
    assert found[("membrane", "train.low")].error is not None  # not in this copy
    assert report["unclaimed"] == ["07-nucleus/test/nucleus-care.tif"]
    assert set(report["other"]) == {"readme_100888.txt", "md5sums.txt"}


def test_inspect_source_cli(tmp_path, capsys):
    src = make_published_tree(tmp_path / "src")
    assert main(["inspect-source", str(src), "--config", str(ROOT / "config.yaml")]) == 0
    out = capsys.readouterr().out
    assert "dataset actin-confocal: OK" in out and "dataset nucleus: OK" in out
    assert "train.low" in out and "10 image(s) from 1 file(s)" in out
    assert "files no glob claims" in out and "nucleus-care.tif" in out
    assert "datasets whose globs match nothing here:" in out and "membrane" in out
    # a mismatched pair is reported as a problem, with the culprit named
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    cfg["datasets"]["nucleus"] = dict(cfg["datasets"]["nucleus"])
    test = {"low": "*/test*/{dataset}-lowsnr.tif", "gt": "*/{dataset}-highsnr.tif"}
    cfg["datasets"]["nucleus"]["test"] = test
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    args = ["inspect-source", str(src), "--config", str(tmp_path / "c.yaml")]
    assert main([*args, "--dataset", "nucleus"]) == 0
    out = capsys.readouterr().out
    assert "dataset nucleus: PROBLEM" in out and "8 image(s) against 3 noisy ones" in out
    assert main([*args, "--dataset", "nope"]) == 2
    assert "not a dataset of the config" in capsys.readouterr().err


def test_inspect_source_without_config(tmp_path, capsys):
    src = make_published_tree(tmp_path / "src")
    (src / "broken.tif").write_bytes(b"not a tiff")
    assert main(["inspect-source", str(src)]) == 0
    out = capsys.readouterr().out
    assert "10 TIFF file(s)" in out and "broken.tif: " in out
    assert "actin-confocal, mito-confocal, nucleus" in out
    assert main(["inspect-source", str(tmp_path / "nowhere")]) == 2
    assert "not a folder or a URL" in capsys.readouterr().err
