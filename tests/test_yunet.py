"""YuNet, the bundled fast face detector (ONNX Runtime, or OpenCV's FaceDetectorYN), as a ferkit Detector."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from ferkit.errors import ConfigError
from ferkit.faces import box_iou, create_detector, list_detectors, match_faces


@pytest.fixture(scope="module")
def yunet():
    return create_detector("yunet")


def test_registered_and_finds_the_face_with_landmarks(yunet, photos_dir):
    assert "yunet" in list_detectors()
    faces = yunet.detect(photos_dir / "angry_man.jpg")
    assert len(faces) == 1 and faces[0].score > 0.7
    marks = faces[0].landmarks
    assert marks.shape == (5, 2)
    assert marks[0, 0] < marks[1, 0] and marks[3, 0] < marks[4, 0]  # the picture's left first, as MTCNN
    x1, y1, x2, y2 = faces[0].box
    assert np.all((marks >= (x1, y1)) & (marks <= (x2, y2)))


def test_recall_on_the_expw_photos(yunet, photos_dir):
    """Measured 89/90 with squared boxes (benchmarks/detection_recall.py --detector yunet)."""
    rows = list(csv.DictReader(open(photos_dir / "expw" / "annotations.csv", newline="")))
    found = 0
    for image in sorted({row["image"] for row in rows}):
        boxes = np.array([[float(r[k]) for k in ("left", "top", "right", "bottom")] for r in rows
                          if r["image"] == image])
        found += match_faces(boxes, [f.square() for f in yunet.detect(photos_dir / "expw" / image)]).sum()
    assert found / len(rows) >= 0.95


def test_large_pictures_are_scaled_down_and_mapped_back(yunet, photos_dir):
    from ferkit.data.images import load_image

    rgb = load_image(photos_dir / "angry_man.jpg", mode="rgb")
    big = np.kron(rgb, np.ones((3, 3, 1), dtype=np.uint8))  # 3× larger than max_side allows at once
    faces = yunet.detect(big)
    assert len(faces) == 1
    assert box_iou(np.array(faces[0].box) / 3, np.array(yunet.detect(rgb)[0].box))[0, 0] > 0.7


def test_blank_picture_and_bad_options(yunet):
    assert yunet.detect(np.full((240, 320, 3), 128, np.uint8)) == []
    with pytest.raises(ConfigError, match="thresholds must be in"):
        create_detector("yunet", score_threshold=1.5)
    with pytest.raises(ConfigError, match="engine must be one of onnxruntime, opencv"):
        create_detector("yunet", engine="tensorflow")


def test_onnxruntime_engine_finds_what_opencv_finds(yunet, photos_dir):
    """The default engine decodes the network's outputs itself; OpenCV's FaceDetectorYN is the reference.
    Pictures of odd sizes (not multiples of 32) and ones scaled down by max_side are among them."""
    from ferkit.data.images import load_image

    assert yunet.engine == "onnxruntime"
    opencv = create_detector("yunet", engine="opencv")
    pictures = [photos_dir / "angry_man.jpg", photos_dir / "crying_woman.jpg",
                *sorted((photos_dir / "expw").glob("*.jpg"))[:12]]
    faces = 0
    for picture in pictures:
        rgb = load_image(picture, mode="rgb")
        for image in (rgb, rgb[: rgb.shape[0] - 7, : rgb.shape[1] - 13]):
            ours, theirs = yunet.detect(image), opencv.detect(image)
            assert len(ours) == len(theirs), picture
            for a, b in zip(ours, theirs):
                assert np.allclose(a.box, b.box, atol=0.01)
                assert np.allclose(a.landmarks, b.landmarks, atol=0.01)
                assert a.score == pytest.approx(b.score, abs=1e-4)
            faces += len(ours)
    assert faces >= 30


COMMANDS_WITH_A_DETECTOR = [["predict", "x.jpg"], ["video", "x.mp4"], ["webcam"], ["demo"], ["serve"],
                            ["crop", "a", "b"], ["evaluate", "--model", "default", "--data", "d"]]


@pytest.mark.parametrize("argv", COMMANDS_WITH_A_DETECTOR, ids=lambda argv: argv[0])
def test_yunet_is_every_commands_default_detector(argv):
    """One constant, measured in BENCHMARKS.md (*Face detection*), decides the default everywhere."""
    from ferkit.cli import build_parser
    from ferkit.faces import DEFAULT_DETECTOR

    assert DEFAULT_DETECTOR == "yunet"
    assert build_parser().parse_args(argv).detector == DEFAULT_DETECTOR
    assert build_parser().parse_args([*argv, "--detector", "mtcnn"]).detector == "mtcnn"


def test_yunet_is_the_default_of_the_python_api(model_file):
    import inspect

    from ferkit.faces import DEFAULT_DETECTOR, crop_dataset, detect_and_crop
    from ferkit.predict import Recognizer
    from ferkit.serve.engine import EngineConfig

    assert create_detector().name == DEFAULT_DETECTOR
    assert Recognizer(model=model_file, backend="torch").detector.name == DEFAULT_DETECTOR
    assert Recognizer(model=model_file, backend="torch", detector="mtcnn").detector.name == "mtcnn"
    assert EngineConfig().detector == DEFAULT_DETECTOR
    for function in (detect_and_crop, crop_dataset.crop_dataset):
        assert inspect.signature(function).parameters["detector"].default == DEFAULT_DETECTOR


def test_min_face_size_drops_smaller_faces(photos_dir):
    assert len(create_detector("yunet", min_face_size=100).detect(photos_dir / "angry_man.jpg")) == 1
    assert create_detector("yunet", min_face_size=4000).detect(photos_dir / "angry_man.jpg") == []
    with pytest.raises(ConfigError, match="min_face_size"):
        create_detector("yunet", min_face_size=-5)
