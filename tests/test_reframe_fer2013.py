"""scripts/reframe_fer2013.py: a FER2013 frame cut again by the inference path keeps its name and size."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from script_loader import load_script


@pytest.fixture(scope="module")
def reframe():
    return load_script("scripts/reframe_fer2013.py")


def test_a_frame_is_reframed_in_place_of_its_name(reframe, fer2013_dir, tmp_path):
    source = sorted((fer2013_dir / "train" / "happy").glob("*.jpg"))[0]
    target = tmp_path / "train" / "happy" / source.name
    assert reframe._reframe((source, target)) is True
    before = cv2.imread(str(source), cv2.IMREAD_GRAYSCALE)
    after = cv2.imread(str(target), cv2.IMREAD_GRAYSCALE)
    assert after.shape == before.shape == (48, 48)
    assert np.abs(after.astype(int) - before.astype(int)).mean() > 1  # cut again, not copied


def test_a_frame_without_a_face_is_kept_as_it_was(reframe, tmp_path):
    source = tmp_path / "flat.jpg"
    cv2.imwrite(str(source), np.full((48, 48), 128, np.uint8))
    target = tmp_path / "out" / "flat.jpg"
    assert reframe._reframe((source, target)) is False
    assert target.read_bytes() == source.read_bytes()


def test_an_unreadable_file_is_left_out(reframe, tmp_path):
    source = tmp_path / "broken.jpg"
    source.write_text("not an image")
    target = tmp_path / "out" / "broken.jpg"
    assert reframe._reframe((source, target)) is None and not target.exists()


def test_a_source_without_frames_is_one_error_line(tmp_path):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "scripts/reframe_fer2013.py", str(tmp_path), str(tmp_path / "o")],
                          capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0
    assert done.stderr.startswith("reframe_fer2013: error:")
