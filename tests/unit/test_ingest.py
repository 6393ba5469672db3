"""Ingest: stack and folder pairing, pair checks, the validation split, the manifest."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from fmdenoise.data.ingest import glob_regex, ingest_dataset, split_images, split_train_val
from fmdenoise.errors import ImageError


def stack(path, n, shape=(40, 40), seed=0, const=False):
    rng = np.random.default_rng(seed)
    data = np.zeros((n, *shape), np.float32) if const else rng.random((n, *shape), dtype=np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, data, photometric="minisblack")
    return data


STACK_CFG = {
    "root": "ds",
    "train": {"low": "train/*-lowsnr.tif", "gt": "train/*-highsnr.tif"},
    "test": {
        "low": "test/*-lowsnr.tif",
        "gt": "test/*-highsnr.tif",
        "provided": {"care": "test/care/*.tif"},
    },
}


def make_stacks(root, n_train=10, n_test=3):
    d = root / "ds"
    low = stack(d / "train/x-lowsnr.tif", n_train, seed=1)
    stack(d / "train/x-highsnr.tif", n_train, seed=2)
    stack(d / "test/x-lowsnr.tif", n_test, seed=3)
    stack(d / "test/x-highsnr.tif", n_test, seed=4)
    stack(d / "test/care/x-care.tif", n_test, seed=5)
    return low


def test_stack_ingest_pairs_by_page_and_splits(tmp_path):
    low = make_stacks(tmp_path / "src")
    m = ingest_dataset(tmp_path / "src", STACK_CFG, tmp_path / "data", val_fraction=0.2, seed=0)
    counts = m.groupby(["split", "role"]).size().to_dict()
    assert counts == {
        ("test", "gt"): 3,
        ("test", "low"): 3,
        ("test", "provided/care"): 3,
        ("train", "gt"): 8,
        ("train", "low"): 8,
        ("val", "gt"): 2,
        ("val", "low"): 2,
    }
    by_split = {s: set(m[m.split == s].image) for s in ("train", "val", "test")}
    assert not (by_split["train"] & by_split["val"]) and not (by_split["train"] & by_split["test"])
    # page 3 of the stack is image train-0003, wherever it was split
    row = m[(m.image == "train-0003") & (m.role == "low")].iloc[0]
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "data" / row.path), low[3])
    assert row.source == "x-lowsnr.tif#3" and row["dtype"] == "float32"
    assert len(split_images(tmp_path / "data", "test")) == 3


def test_folder_ingest_pairs_by_name(tmp_path):
    d = tmp_path / "src"
    rng = np.random.default_rng(0)
    for side in ("train", "test"):
        for i in range(4):
            for kind in ("low", "gt"):
                (d / side / kind).mkdir(parents=True, exist_ok=True)
                tifffile.imwrite(
                    d / side / kind / f"img_{i}.tif", rng.random((20, 24), dtype=np.float32)
                )
    cfg = {
        "train": {"low": "train/low/*.tif", "gt": "train/gt/*.tif"},
        "test": {"low": "test/low/*.tif", "gt": "test/gt/*.tif"},
    }
    m = ingest_dataset(d, cfg, tmp_path / "data", val_fraction=0.25, seed=1)
    assert sorted(set(m[m.split == "test"].image)) == [f"test-img_{i}" for i in range(4)]
    assert set(m.height) == {20} and set(m.width) == {24}


def test_split_is_seeded_and_stable():
    names = [f"im{i}" for i in range(20)]
    a = split_train_val(names, 0.15, seed=3)
    assert a == split_train_val(list(reversed(names)), 0.15, seed=3)
    assert sum(v == "val" for v in a.values()) == 3
    assert a != split_train_val(names, 0.15, seed=4)


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("missing", "has no ground-truth partner"),
        ("shape", "shape mismatch"),
        ("nan", "NaN or Inf"),
        ("constant", "ground truth is constant"),
    ],
)
def test_bad_pairs_are_named(tmp_path, fault, message):
    d = tmp_path / "src"
    for kind in ("low", "gt"):
        (d / kind).mkdir(parents=True, exist_ok=True)
        for i in range(3):
            img = np.random.default_rng(i).random((16, 16), dtype=np.float32)
            if kind == "gt" and i == 1:
                if fault == "missing":
                    continue
                img = {
                    "shape": img[:8],
                    "nan": np.where(img > 0.5, np.nan, img),
                    "constant": np.ones_like(img),
                }[fault]
            tifffile.imwrite(d / kind / f"a{i}.tif", img)
    cfg = {
        "train": {"low": "low/*.tif", "gt": "gt/*.tif"},
        "test": {"low": "low/*.tif", "gt": "gt/*.tif"},
    }
    with pytest.raises(ImageError, match=message) as err:
        ingest_dataset(d, cfg, tmp_path / "data", val_fraction=0.3, seed=0)
    assert "a1" in str(err.value)
    assert not (tmp_path / "data").exists()


def test_not_a_tiff_is_named(tmp_path):
    d = tmp_path / "src"
    (d / "low").mkdir(parents=True)
    (d / "low" / "x.tif").write_text("not an image")
    cfg = {
        "train": {"low": "low/*.tif", "gt": "low/*.tif"},
        "test": {"low": "low/*.tif", "gt": "low/*.tif"},
    }
    with pytest.raises(ImageError, match=r"x\.tif: not a readable TIFF"):
        ingest_dataset(d, cfg, tmp_path / "data", val_fraction=0.3, seed=0)


def test_glob_regex_captures_wildcards():
    assert glob_regex("train/*/img_?.tif").match("train/a/img_1.tif").groups() == ("a", "1")
    assert glob_regex("**/x.tif").match("a/b/x.tif")
