"""benchmarks/failure_modes.py: the head pose it reads from five landmarks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from script_loader import load_script

ROOT = Path(__file__).resolve().parents[1]
FRONTAL = np.array([[30.0, 40.0], [70.0, 40.0], [50.0, 60.0], [35.0, 80.0], [65.0, 80.0]])


@pytest.fixture(scope="module")
def failure_modes():
    return load_script("benchmarks/failure_modes.py")


def rotated(points: np.ndarray, degrees: float) -> np.ndarray:
    a = np.radians(degrees)
    return points @ np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]]) + 7.0


def test_a_frontal_face_has_no_turn_and_no_tilt(failure_modes):
    turn, tilt = failure_modes.pose(FRONTAL)
    assert turn == pytest.approx(0.0, abs=1e-9) and tilt == pytest.approx(0.0, abs=1e-9)


def test_turn_is_the_nose_offset_in_eye_to_mouth_heights_whatever_the_tilt_and_scale(failure_modes):
    turned = FRONTAL.copy()
    turned[2, 0] += 16.0  # nose moved a 40-px eye-to-mouth height × 0.4 towards the picture's right
    for degrees in (0.0, 25.0, -40.0):
        turn, tilt = failure_modes.pose(rotated(turned * 1.7, degrees))
        assert turn == pytest.approx(0.4) and tilt == pytest.approx(degrees)


def test_buckets_cover_each_value_once(failure_modes):
    values = np.array([0.0, 0.05, 0.1, 0.34, 0.35, 3.0])
    rows = failure_modes.bucket_rows(values, failure_modes.TURN_BINS, "")
    assert [name for name, _ in rows] == ["0–0.1", "0.1–0.2", "0.2–0.35", "≥ 0.35"]
    assert np.array_equal(np.sum([mask for _, mask in rows], axis=0), np.ones(len(values)))


def test_search_word_is_the_expw_file_names_first_word(failure_modes):
    assert failure_modes.search_word(Path("images/Angry_worker_133_f0.jpg")) == "angry"
    assert failure_modes.search_word(Path("x/fighting_2_f1.jpg")) == "fighting"


def test_query_table_pools_rare_words(failure_modes, capsys):
    scored = failure_modes.Scored
    faces = [scored("angry", "angry", query="angry")] * 3 + [scored("sad", "", query="mad"),
                                                             scored("sad", "sad", query="awe")]
    failure_modes.query_table(faces, min_faces=2)
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")][1:]
    assert rows[0] == "| angry | 3 (60%) | angry 3 | 100% | 100% | 100.0% |"
    assert rows[1] == "| the other 2 words | 2 (40%) | sad 2 | 0% | 0% | 50.0% |"
