"""benchmarks/photo_peers.py: a peer's answers become labels per labelled face, matched as ferkit's are."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ferkit.evaluate_photos import LabelledFace, faces_by_photo
from script_loader import load_script


@pytest.fixture(scope="module")
def photo_peers():
    return load_script("benchmarks/photo_peers.py")


def face(photo: str, box: tuple[float, float, float, float], label: str) -> LabelledFace:
    return LabelledFace(Path(photo), box, label, photo)


def test_answers_match_squared_detections_one_to_one(photo_peers):
    faces = [face("a.jpg", (0, 0, 100, 100), "happy"), face("b.jpg", (10, 10, 60, 60), "sad"),
             face("a.jpg", (200, 0, 300, 100), "angry")]
    photos = faces_by_photo(faces)
    answers = [  # a.jpg: a narrow box on the first face (its square overlaps), none near the third
        {"found": [[20, 0, 80, 100, "happy"], [500, 500, 520, 520, "fear"]], "boxes": ["happy", "fear"]},
        {"found": [], "boxes": ["sad"]},
    ]
    labels = photo_peers.answers_to_labels(faces, photos, answers)
    assert labels == {"detect": ["happy", "", ""], "boxes": ["happy", "sad", "fear"]}


def test_scores_count_a_missed_face_as_wrong(photo_peers):
    common = np.array([True, False, False, True])  # the faces every model found
    s = photo_peers.scores(["happy", "sad", "sad", "angry"], ["happy", "", "sad", "sad"], common)
    assert s["accuracy"] == 0.5 and s["found"] == 0.75 and s["on_found"] == pytest.approx(2 / 3)
    assert s["macro"] == pytest.approx((1.0 + 0.5 + 0.0) / 3)
    assert s["on_common"] == 0.5 and s["common"] == 2


def test_class_rows_recall_counts_a_miss_and_share_counts_only_found_faces(photo_peers):
    recall, share = photo_peers.class_rows(["happy", "happy", "sad", "sad"], ["happy", "", "happy", "sad"])
    assert recall == {"happy": 0.5, "sad": 0.5}
    assert share == {"happy": 2 / 3, "sad": 1 / 3}


def test_paired_counts_faces_only_one_model_gets_right_on_the_mask(photo_peers):
    labels = ["happy", "sad", "sad", "angry", "fear"]
    ours, theirs = ["happy", "sad", "", "angry", "sad"], ["sad", "sad", "sad", "", "fear"]
    only_ours, only_theirs, p = photo_peers.paired(labels, ours, theirs, np.ones(5, dtype=bool))
    assert (only_ours, only_theirs) == (2, 2) and p == 1.0
    mask = np.array([True, True, False, True, False])
    assert photo_peers.paired(labels, ours, theirs, mask)[:2] == (2, 0)
