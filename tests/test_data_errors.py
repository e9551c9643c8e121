"""Bad dataset input: one DataError (or ConfigError) that names the file, folder or CSV row."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from ferkit.data import detect_format, load_dataset, pack_folder
from ferkit.errors import ConfigError, DataError

GOOD = " ".join(["7"] * 2304)


@pytest.fixture(scope="module")
def jpg(fer2013_dir) -> Path:
    return next((fer2013_dir / "train" / "happy").iterdir())


def tree(root: Path, files: list[str], image: Path) -> Path:
    """Folders and copies of a real image at the given relative paths ("x/" makes an empty folder)."""
    for rel in files:
        if rel.endswith("/"):
            (root / rel).mkdir(parents=True, exist_ok=True)
        else:
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(image, root / rel)
    return root


def raises(exc: type[Exception], *words: str):
    """pytest.raises that also checks every word appears in the message."""
    return pytest.raises(exc, match="(?s)" + "".join(f"(?=.*{re.escape(w)})" for w in words))


def test_missing_root(tmp_path):
    with raises(DataError, str(tmp_path / "nope"), "no such file"):
        load_dataset(tmp_path / "nope")


def test_file_where_folder_expected(tmp_path, jpg):
    with raises(DataError, jpg.name, "not a dataset"):
        load_dataset(jpg)
    csv = tmp_path / "fer2013.csv"
    csv.write_text(f"emotion,pixels\n0,{GOOD}\n")
    with raises(DataError, "fer2013.csv", "reads a folder"):
        load_dataset(csv, format="folders")
    with raises(DataError, str(tmp_path), "reads a single file"):
        load_dataset(tmp_path, format="fer2013-csv")


@pytest.mark.parametrize("files, words", [
    (["a.jpg", "b.jpg"], ["2 images but no class folders"]),
    ([], ["no class folders"]),
    (["happy/a.jpg", "sad/"], ["sad", "class folder has no images"]),
    (["happy/notes.txt", "sad/"], ["no image files"]),
    (["train/happy/a.jpg", "train/sad/b.jpg", "train/angry/c.jpg", "test/happy/d.jpg"],
     ["differ between splits", "test lacks angry, sad"]),
    (["train/happy/a.jpg", "extra/happy/b.jpg"], ["mixes split folders (train) with other folders (extra)"]),
    (["Happy/a.jpg", "happiness/b.jpg"], ["Happy, happiness", "class 'happy'"]),
])
def test_bad_folder_layouts(tmp_path, jpg, files, words):
    root = tree(tmp_path / "root", files, jpg)
    if files and files[0].endswith(".txt"):
        (root / files[0]).write_text("not an image")
    root.mkdir(exist_ok=True)
    with raises(DataError, str(root), *words):
        load_dataset(root, cache=False)
    with raises(DataError, *words):
        detect_format(root)


def test_forced_format_that_does_not_fit(tmp_path, jpg):
    root = tree(tmp_path / "root", ["happy/a.jpg", "sad/b.jpg"], jpg)
    with raises(DataError, "happy/a.jpg", "Training_"):
        load_dataset(root, format="fer2013-folders", cache=False)
    with raises(DataError, "happy/a.jpg", "S<subject>"):
        load_dataset(root, format="ckplus", cache=False)
    with raises(ConfigError, "no-such-format", "fer2013-folders"):
        load_dataset(root, format="no-such-format")
    with raises(ConfigError, "image_size"):
        load_dataset(root, image_size=0)


@pytest.mark.parametrize("text, words", [
    ("emotion,Usage\n0,Training\n", ["missing column 'pixels'", "found columns: emotion, Usage"]),
    ("pixels,Usage\n1 2,Training\n", ["missing column 'emotion'", "found columns: pixels, Usage"]),
    ("", ["missing column 'emotion'", "found columns: none"]),
    ("emotion,pixels,Usage\n", ["no data rows"]),
    (f"emotion,pixels,Usage\n0,{GOOD},Training\n3,{' '.join(['7'] * 2303)},Training\n",
     ["row 3: 2303 pixels, expected 2304 (48×48)"]),
    (f"emotion,pixels,Usage\n0,{GOOD},Training\n\n1,{GOOD[:-1]}7x,PublicTest\n",
     ["row 4: non-numeric pixel value '7x'"]),
    (f"emotion,pixels,Usage\n0,{GOOD[:-1]}300,Training\n", ["row 2: pixel value 300 outside 0..255"]),
    (f"emotion,pixels,Usage\n0,{GOOD},Training\n9,{GOOD},Training\n", ["row 3: unknown label 9"]),
    (f"emotion,pixels,Usage\nhappy,{GOOD},Training\n", ["row 2: label 'happy' is not an integer"]),
    (f"emotion,pixels,Usage\n0,{GOOD},Training\n0,{GOOD},Train\n", ["row 3: Usage 'Train'", "PrivateTest"]),
    (f"emotion,pixels,Usage\n0,{GOOD},Training,extra\n", ["row 2: 4 fields, expected 3"]),
])
def test_bad_csv(tmp_path, text, words):
    csv = tmp_path / "fer2013.csv"
    csv.write_text(text)
    with raises(DataError, str(csv), *words):
        load_dataset(csv, cache=False)


def test_csv_not_text(tmp_path):
    csv = tmp_path / "fer2013.csv"
    csv.write_bytes(b"emotion,pixels\n\xff\xfe\x00garbage")
    with raises(DataError, str(csv), "not a text CSV"):
        load_dataset(csv, cache=False)


def test_unknown_ckplus_label(tmp_path):
    csv = tmp_path / "ckextended.csv"
    csv.write_text(f"emotion,pixels,Usage\n7,{GOOD},Training\n8,{GOOD},Training\n")
    with raises(DataError, "row 3: unknown label 8", "ckplus-csv labels are 0..7"):
        load_dataset(csv, cache=False)


def test_bad_packs(tmp_path, jpg):
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file at all")
    with raises(DataError, str(garbage), "unreadable pack"):
        load_dataset(garbage, cache=False)
    other = tmp_path / "other.npz"
    np.savez(other, x=np.zeros(3))
    with raises(DataError, str(other), "not a ferkit pack"):
        load_dataset(other, cache=False)
    empty_class = tree(tmp_path / "root", ["happy/a.jpg", "sad/"], jpg)
    with raises(DataError, "sad", "no images"):
        pack_folder(empty_class, tmp_path / "p.npz")
    assert not (tmp_path / "p.npz").exists()
