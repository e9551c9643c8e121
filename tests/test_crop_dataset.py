"""`ferkit crop`: a dataset of full photos becomes a dataset of face crops that ferkit can train on."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from ferkit.cli import main
from ferkit.data import load_dataset
from ferkit.errors import DataError
from ferkit.faces.crop_dataset import crop_dataset


@pytest.fixture
def photo_dataset(photos_dir, tmp_path):
    root = tmp_path / "photos"
    for split in ("train", "validation"):
        (root / split / "angry").mkdir(parents=True)
        (root / split / "sad").mkdir(parents=True)
        shutil.copy(photos_dir / "angry_man.jpg", root / split / "angry" / "man.jpg")
        shutil.copy(photos_dir / "crying_woman.jpg", root / split / "sad" / "woman.jpg")
    Image.fromarray(np.full((120, 160, 3), 200, np.uint8)).save(root / "train" / "sad" / "wall.png")
    (root / "train" / "angry" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return root


def test_crop_dataset_keeps_layout_and_trains(photo_dataset, tmp_path):
    target = tmp_path / "faces"
    stats = crop_dataset(photo_dataset, target, size=48, progress=False)
    assert stats.images == 5 and stats.faces == 4
    assert stats.no_face == ["train/sad/wall.png"] and stats.unreadable == ["train/angry/broken.jpg"]
    data = load_dataset(target)
    assert data.images.shape == (5, 48, 48)
    assert set(data.usage) == {"train", "validation"} and data.class_names == ["angry", "sad"]
    face = np.asarray(Image.open(target / "train" / "angry" / "man.png"))
    assert face.shape == (48, 48) and face.std() > 20  # a face, not a flat patch


def test_crop_skip_no_face_and_cli(photo_dataset, tmp_path, capsys):
    target = tmp_path / "faces"
    assert main(["crop", str(photo_dataset), str(target), "--skip-no-face", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "wrote 4 crops" in out and "1 unreadable" in out
    assert not (target / "train" / "sad" / "wall.png").exists()


def test_crop_refuses_bad_folders(photo_dataset, tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        crop_dataset(tmp_path / "missing", tmp_path / "out")
    with pytest.raises(DataError, match="inside the source"):
        crop_dataset(photo_dataset, photo_dataset / "crops")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images"):
        crop_dataset(tmp_path / "empty", tmp_path / "out")
