"""Results: JSON, CSV rows, summary lines and drawing; both CLI tables come from csv_header."""

from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest
from PIL import Image

from ferkit.cli import main
from ferkit.predict import Recognizer
from ferkit.results import Face, Results, csv_header, format_top_k
from ferkit.video import process_video

CLASSES = ["angry", "happy", "sad"]


def _face(box=(10.04, 20.0, 50.0, 70.06), probs=(0.1, 0.7, 0.2)) -> Face:
    landmarks = np.array([[20.0, 30.0], [40.0, 30.0], [30.0, 40.0], [22.0, 55.0], [38.0, 55.0]])
    return Face(box, 0.987654, landmarks, dict(zip(CLASSES, probs)))


def _results(**where) -> Results:
    image = np.zeros((100, 120, 3), np.uint8)
    faces = [_face(), _face((60.0, 10.0, 90.0, 40.0), (0.5, 0.2, 0.3))]
    return Results(faces, CLASSES, "photo.jpg", timing={"detect": 12.345, "classify": 1.0}, shape=(100, 120),
                   image=image, **where)


def test_csv_header_for_images_and_video():
    assert csv_header(CLASSES) == ["file", "face", "x1", "y1", "x2", "y2", "score", "label",
                                   "p_angry", "p_happy", "p_sad"]
    assert csv_header(CLASSES, video=True)[:4] == ["frame", "time_s", "face_id", "x1"]
    assert csv_header(CLASSES, video=True)[3:] == csv_header(CLASSES)[2:]


def test_still_image_dict_and_rows():
    result = _results()
    assert result.to_dict() == {"file": "photo.jpg", "faces": [f.to_dict() for f in result.faces]}
    assert result.to_dict()["faces"][0]["box"] == [10.0, 20.0, 50.0, 70.1]
    details = result.to_dict(details=True)
    assert details["shape"] == [100, 120] and details["timing_ms"] == {"detect": 12.35, "classify": 1.0}
    json.dumps(details)
    rows = result.to_rows()
    assert rows[0] == ["photo.jpg", 1, 10.0, 20.0, 50.0, 70.1, 0.9877, "happy", 0.1, 0.7, 0.2]
    assert rows[1][:2] == ["photo.jpg", 2] and rows[1][7] == "angry"
    assert all(len(row) == len(csv_header(CLASSES)) for row in rows)


def test_video_frame_dict_and_rows():
    result = _results(frame_index=12, time_s=1.2000001, ids=[3, 7])
    assert result.is_frame
    record = result.to_dict()
    assert record["frame"] == 12 and record["time_s"] == 1.2 and record["face_ids"] == [3, 7]
    assert [row[:3] for row in result.to_rows()] == [[12, 1.2, 3], [12, 1.2, 7]]
    assert result.to_rows()[0][3:] == _results().to_rows()[0][2:]


def test_summary_lines_and_top_k():
    probs = {"angry": 0.1, "happy": 0.7, "sad": 0.2}
    assert format_top_k(probs) == "happy 0.70  sad 0.20  angry 0.10"
    assert format_top_k(probs, k=1, skip=1) == "sad 0.20"
    lines = _results().summary_lines()
    assert lines[0] == "photo.jpg: face 1 box (10,20,50,70) happy 0.70  [sad 0.20  angry 0.10]"
    frame = _results(frame_index=4, time_s=0.4, ids=[9])
    assert frame.summary_lines()[0].startswith("photo.jpg frame 4: face 9 ")
    empty = Results([], CLASSES, "wall.jpg")
    assert empty.summary_lines() == ["wall.jpg: no face found"] and empty.to_rows() == []


def test_annotate_and_save(tmp_path):
    result = _results()
    drawn = result.annotate()
    assert drawn.shape == result.image.shape and drawn.any() and not result.image.any()
    path = result.save(tmp_path / "out" / "a.jpg")
    assert Image.open(path).size == (120, 100)
    with pytest.raises(ValueError):
        Results([], CLASSES).annotate()


def _header(path) -> list[str]:
    with open(path, newline="") as handle:
        return next(csv.reader(handle))


def test_predict_and_video_csvs_share_one_header(model_file, photos_dir, tmp_path, capsys):
    table = tmp_path / "faces.csv"
    assert main(["predict", str(photos_dir / "angry_man.jpg"), "--model", str(model_file),
                 "--backend", "torch", "--csv", str(table)]) == 0
    capsys.readouterr()
    recognizer = Recognizer(model=model_file, backend="torch")
    clip = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 5.0, (425, 521))
    frame = cv2.imread(str(photos_dir / "angry_man.jpg"))
    for _ in range(2):
        writer.write(cv2.resize(frame, (425, 521)))
    writer.release()
    process_video(clip, recognizer, csv_path=tmp_path / "frames.csv", progress=False)
    names = recognizer.class_names
    assert _header(table) == csv_header(names)
    assert _header(tmp_path / "frames.csv") == csv_header(names, video=True)
    rows = list(csv.reader((tmp_path / "frames.csv").open(newline="")))[1:]
    assert len(rows) == 2 and [r[:3] for r in rows] == [["0", "0.0", "1"], ["1", "0.2", "1"]]
