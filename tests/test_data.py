"""Dataset readers on the real shared data: folders, CSVs, CK+, packs, detection, cache, skipping."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import make_small_fer2013
from ferkit.data import (
    CANONICAL_ORDER,
    FaceDataset,
    canonical_name,
    detect_format,
    load_dataset,
    order_classes,
    pack_folder,
)
from ferkit.data.ckplus import CKPLUS_CSV_LABELS
from ferkit.data.fer2013 import FER2013_LABELS
from ferkit.data.images import load_image
from ferkit.errors import ImageError

FER_CLASSES = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
CK_FOLDERS = {"anger": 135, "contempt": 54, "disgust": 177, "fear": 75, "happy": 207, "sadness": 84,
              "surprise": 249}


@pytest.fixture(scope="module")
def fer_tiny(fer2013_dir, tmp_path_factory) -> Path:
    """FER2013 Kaggle layout, 5 real images per class and usage (105 images)."""
    return make_small_fer2013(fer2013_dir, tmp_path_factory.mktemp("fer_tiny"), per_class=5)


@pytest.fixture(scope="module")
def ckplus(ckplus_dir) -> FaceDataset:
    return load_dataset(ckplus_dir, cache=False)


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    path.write_text("\n".join(",".join(map(str, r)) for r in [header, *rows]) + "\n")
    return path


def pixels(image: np.ndarray) -> str:
    return " ".join(map(str, image.ravel()))


def assert_same(a: FaceDataset, b: FaceDataset) -> None:
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.class_names == b.class_names
    for key in ("usage", "groups", "sources"):
        x, y = getattr(a, key), getattr(b, key)
        assert (x is None and y is None) or np.array_equal(x, y), key


def copy_classes(
    src: Path, dst: Path, names: dict[str, str], per_class: int, keep_names: bool = False
) -> None:
    """Copy `per_class` real images of each src/<class> into dst/<names[class]> (as img<i>.<ext>)."""
    for class_dir, new_name in names.items():
        out = dst / new_name
        out.mkdir(parents=True, exist_ok=True)
        for i, f in enumerate(sorted((src / class_dir).iterdir())[:per_class]):
            shutil.copy(f, out / (f.name if keep_names else f"img{i}{f.suffix}"))


# ---------------------------------------------------------------- readers on real data

def test_fer2013_folders(fer_tiny):
    data = load_dataset(fer_tiny, cache=False)
    assert data.meta["format"] == "fer2013-folders" and data.name == f"fer2013-folders:{fer_tiny.resolve()}"
    assert data.images.shape == (105, 48, 48) and data.images.dtype == np.uint8
    assert data.class_names == FER_CLASSES
    assert data.labels.dtype == np.int64 and set(data.class_counts().values()) == {15}
    assert {u: int((data.usage == u).sum()) for u in set(data.usage)} == {
        "Training": 35, "PublicTest": 35, "PrivateTest": 35}
    assert list(data.sources) == sorted(data.sources)
    for source, usage, label in zip(data.sources, data.usage, data.labels, strict=True):
        split, folder, file_name = source.split("/")
        assert file_name.startswith(usage + "_") and canonical_name(folder) == data.class_names[label]
    assert data.groups is None and data.meta["skipped"] == []
    first = fer_tiny / data.sources[0]
    np.testing.assert_array_equal(data.images[0], load_image(first, "gray"))


def test_ckplus_whole(ckplus, ckplus_dir):
    assert ckplus.meta["format"] == "ckplus" and len(ckplus) == 981
    assert ckplus.class_names == ["angry", "disgust", "fear", "happy", "sad", "surprise", "contempt"]
    assert ckplus.class_counts() == {canonical_name(k): v for k, v in CK_FOLDERS.items()}
    assert ckplus.usage is None and ckplus.images.shape[1:] == (48, 48)
    assert len(set(ckplus.groups)) == 118
    for source, group in zip(ckplus.sources, ckplus.groups, strict=True):
        assert Path(source).name.startswith(group + "_") and group[0] == "S"


def test_fer2013_csv_equals_folders(fer_tiny, tmp_path):
    folders = load_dataset(fer_tiny, cache=False)
    rows = [[u, "x", FER2013_LABELS.index(folders.class_names[y]), pixels(img)]
            for img, y, u in zip(folders.images, folders.labels, folders.usage, strict=True)]
    csv = write_csv(tmp_path / "fer2013.csv", ["Usage", "extra", "emotion", "pixels"], rows)
    data = load_dataset(csv, cache=False)
    assert data.meta["format"] == "fer2013-csv" and detect_format(csv) == "fer2013-csv"
    np.testing.assert_array_equal(data.images, folders.images)
    np.testing.assert_array_equal(data.labels, folders.labels)
    np.testing.assert_array_equal(data.usage, folders.usage)
    assert data.class_names == folders.class_names
    assert data.sources[0] == "fer2013.csv:2" and data.sources[-1] == f"fer2013.csv:{len(rows) + 1}"


def test_ckplus_csv_equals_folders(ckplus, tmp_path):
    pick = np.concatenate([np.flatnonzero(ckplus.labels == y)[:4] for y in range(ckplus.num_classes)])
    sub = ckplus.subset(pick)
    usages = ["Training", "PublicTest", "PrivateTest"]
    rows = [[CKPLUS_CSV_LABELS.index(sub.class_names[y]), pixels(img), usages[i % 3]]
            for i, (img, y) in enumerate(zip(sub.images, sub.labels, strict=True))]
    header = ["emotion", "pixels", "Usage"]
    by_name = write_csv(tmp_path / "ckextended.csv", header, rows)
    data = load_dataset(by_name, cache=False)
    assert data.meta["format"] == "ckplus-csv"
    assert data.class_names == sub.class_names  # contempt (7) last, no neutral: only classes present
    np.testing.assert_array_equal(data.images, sub.images)
    np.testing.assert_array_equal(data.labels, sub.labels)
    assert detect_format(write_csv(tmp_path / "faces.csv", header, rows)) == "ckplus-csv"  # label 7 present
    no_contempt = [r for r in rows if r[0] != 7]
    plain = write_csv(tmp_path / "faces2.csv", header, no_contempt)
    assert detect_format(plain) == "fer2013-csv"
    assert load_dataset(plain, format="ckplus-csv", cache=False).meta["format"] == "ckplus-csv"


def test_generic_train_validation_folders(fer_tiny, tmp_path):
    synonyms = {"angry": "Anger", "disgust": "disgusted", "fear": "Scared", "happy": "Happiness",
                "neutral": "NEUTRAL", "sad": "Sadness", "surprise": "surprised"}
    for src, dst in (("train", "train"), ("test", "Validation")):  # FER2013 names, but the user's split
        copy_classes(fer_tiny / src, tmp_path / "data" / "images" / dst, synonyms, per_class=3,
                     keep_names=True)
    for root in (tmp_path / "data", tmp_path / "data" / "images"):
        data = load_dataset(root, cache=False)
        assert data.meta["format"] == "folders" and detect_format(root) == "folders"
        assert data.class_names == FER_CLASSES
        assert sorted(set(data.usage)) == ["train", "validation"] and len(data) == 42
    assert (load_dataset(tmp_path / "data" / "images" / "Validation", cache=False).meta["format"]
            == "fer2013-folders")
    shutil.rmtree(tmp_path / "data" / "images" / "train")  # a lone split folder is not looked through
    assert set(load_dataset(tmp_path / "data", cache=False).usage) == {"validation"}


def test_generic_folders_any_names_sizes_and_modes(fer_tiny, tmp_path):
    copy_classes(fer_tiny / "train", tmp_path, {"happy": "Happy", "angry": "dog", "sad": "cat"}, per_class=2)
    ramp = np.linspace(0, 1000, 48 * 48).reshape(48, 48).astype(np.uint16)  # 16-bit, small range
    Image.fromarray(ramp).save(tmp_path / "cat" / "deep.png")
    rgba = np.zeros((48, 48, 4), np.uint8)  # fully transparent black: Pillow composites on white
    Image.fromarray(rgba, "RGBA").save(tmp_path / "dog" / "clear.png")
    data = load_dataset(tmp_path, cache=False)
    assert data.class_names == ["happy", "cat", "dog"] and data.usage is None and len(data) == 8
    deep = data.images[list(data.sources).index("cat/deep.png")]
    assert deep.min() == 0 and deep.max() == 255  # range scaled, not shifted to 0..3
    assert (data.images[list(data.sources).index("dog/clear.png")] == 255).all()



def test_image_sizes_native_mixed_and_forced(fer_tiny, tmp_path):
    for name in ("happy", "sad"):
        (tmp_path / name).mkdir()
        for f in sorted((fer_tiny / "train" / name).iterdir())[:2]:
            big = load_image(f, "gray").repeat(2, 0).repeat(2, 1)
            Image.fromarray(big).save(tmp_path / name / f"{f.stem}.png")
    assert load_dataset(tmp_path, cache=False).images.shape == (4, 96, 96)  # one size: kept
    assert load_dataset(tmp_path, image_size=32, cache=False).images.shape == (4, 32, 32)
    shutil.copy(next((fer_tiny / "train" / "sad").iterdir()), tmp_path / "sad")
    assert load_dataset(tmp_path, cache=False).images.shape == (5, 48, 48)  # mixed sizes: 48


def test_pack_roundtrip(fer_tiny, ckplus, ckplus_dir, tmp_path):
    for root, original in ((fer_tiny, load_dataset(fer_tiny, cache=False)), (ckplus_dir, ckplus)):
        pack = pack_folder(root, tmp_path / f"{root.name}.npz")
        assert detect_format(pack) == "pack"
        data = load_dataset(pack, cache=False)
        assert data.meta["format"] == original.meta["format"] and data.meta["pack"]
        assert_same(data, original)
    assert load_dataset(pack, format="ckplus", cache=False).groups is not None


def test_detect_format_each_layout(fer_tiny, ckplus_dir, tmp_path):
    assert detect_format(fer_tiny) == "fer2013-folders"
    assert detect_format(fer_tiny / "test") == "fer2013-folders"
    assert detect_format(ckplus_dir) == "ckplus"
    assert detect_format(ckplus_dir.parent) == "ckplus"  # a root holding one folder is looked through
    renamed = tmp_path / "renamed"
    copy_classes(ckplus_dir, renamed, {"anger": "anger", "happy": "happy"}, per_class=2, keep_names=True)
    assert detect_format(renamed) == "ckplus"
    first = sorted((renamed / "happy").iterdir())[0]
    first.rename(first.with_name("smile.png"))
    assert detect_format(renamed) == "folders"


def test_canonical_class_names():
    assert [canonical_name(n) for n in ("Anger", "SADNESS", "happiness", "Surprised", "fearful", "scared",
                                        "disgusted", "contemptuous", " Neutral ")] == [
        "angry", "sad", "happy", "surprise", "fear", "fear", "disgust", "contempt", "neutral"]
    assert canonical_name("Cat") == "cat"
    assert order_classes(["zebra", "Contempt", "happy", "Anger", "apple", "joy"]) == [
        "angry", "happy", "contempt", "apple", "zebra"]
    assert CANONICAL_ORDER[:7] == tuple(FER2013_LABELS) and CANONICAL_ORDER == CKPLUS_CSV_LABELS


# ---------------------------------------------------------------- cache

def test_cache_hit_identical_faster_and_invalidated(ckplus_dir, fer_tiny, tmp_path):
    cache = tmp_path / "cache"
    t0 = time.perf_counter()
    first = load_dataset(ckplus_dir, cache_dir=cache)
    t1 = time.perf_counter()
    second = load_dataset(ckplus_dir, cache_dir=cache)
    t2 = time.perf_counter()
    assert_same(first, second)
    assert second.name == first.name and second.meta == first.meta
    assert t2 - t1 < (t1 - t0) / 2, (t1 - t0, t2 - t1)
    assert len(list(cache.glob("*.npz"))) == 1

    root = tmp_path / "fer"
    shutil.copytree(fer_tiny, root, symlinks=False)
    assert len(load_dataset(root, cache_dir=cache)) == 105
    extra = next((root / "train" / "happy").iterdir())
    shutil.copy(extra, extra.with_name("Training_99999999.jpg"))
    assert len(load_dataset(root, cache_dir=cache)) == 106  # a new file rebuilds
    assert len(list(cache.glob("fer-*.npz"))) == 1  # and replaces the stale cache file
    assert load_dataset(root, image_size=24, cache_dir=cache).image_size == (24, 24)


def test_corrupt_cache_is_rebuilt(fer_tiny, tmp_path):
    cache = tmp_path / "cache"
    first = load_dataset(fer_tiny, cache_dir=cache)
    (cache_file,) = cache.glob("*.npz")
    cache_file.write_bytes(cache_file.read_bytes()[:1000])
    assert_same(load_dataset(fer_tiny, cache_dir=cache), first)
    assert cache_file.stat().st_size > 100_000


# ---------------------------------------------------------------- unreadable images

def test_unreadable_images_skipped_or_strict(fer_tiny, tmp_path):
    root = tmp_path / "faces"
    copy_classes(fer_tiny / "train", root, {"happy": "happy", "sad": "sad"}, per_class=3)
    (root / "happy" / "broken.jpg").write_bytes(b"this is not a jpeg")
    (root / "sad" / "empty.png").write_bytes(b"")
    cache = tmp_path / "cache"
    for _ in range(2):  # fresh, then from the cache: same warning
        with pytest.warns(UserWarning, match=r"skipped 2 unreadable images \(first: .*broken\.jpg: "):
            data = load_dataset(root, cache_dir=cache)
        assert len(data) == 6 and "broken.jpg" not in " ".join(data.sources)
        assert len(data.meta["skipped"]) == 2 and "empty.png: file is empty" in data.meta["skipped"][1]
    for use_cache in (False, True):
        with pytest.raises(ImageError, match=r"broken\.jpg"):
            load_dataset(root, strict=True, cache=use_cache, cache_dir=cache)


# ---------------------------------------------------------------- full FER2013

@pytest.mark.slow
def test_full_fer2013_counts_and_cache_speed(fer2013_dir, tmp_path):
    data = load_dataset(fer2013_dir, cache_dir=tmp_path)
    assert len(data) == 35887 and data.images.shape[1:] == (48, 48)
    assert {u: int((data.usage == u).sum()) for u in set(data.usage)} == {
        "Training": 28709, "PublicTest": 3589, "PrivateTest": 3589}
    train = data.where_usage("Training").class_counts()
    assert train == {"angry": 3995, "disgust": 436, "fear": 4097, "happy": 7215, "sad": 4830,
                     "surprise": 3171, "neutral": 4965}
    test = data.where_usage("PublicTest", "PrivateTest").class_counts()
    assert test == {"angry": 958, "disgust": 111, "fear": 1024, "happy": 1774, "sad": 1247,
                    "surprise": 831, "neutral": 1233}
    start = time.perf_counter()
    again = load_dataset(fer2013_dir, cache_dir=tmp_path)
    assert time.perf_counter() - start < 2.0
    assert_same(again, data)
