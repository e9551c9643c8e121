"""Recognizer API, ONNX backend and the predict/export CLI, on the shared photos."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from PIL import Image

from ferkit.cli import main
from ferkit.data import load_dataset
from ferkit.errors import ModelFileError
from ferkit.models.classifier import Classifier
from ferkit.models.onnx import OnnxClassifier, export_onnx
from ferkit.predict import Face, Recognizer
from ferkit.results import Results

CLASSES = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


@pytest.fixture(scope="session")
def recognizer(model_file):
    return Recognizer(model=model_file, backend="torch")


def _check_face(face):
    x1, y1, x2, y2 = face.box
    assert 0 <= x1 < x2 and 0 <= y1 < y2
    assert set(face.probs) == set(CLASSES)
    assert sum(face.probs.values()) == pytest.approx(1.0, abs=1e-4)
    assert face.label == max(face.probs, key=face.probs.get)
    assert face.landmarks.shape == (5, 2)


def test_detect_every_input_type(recognizer, photos_dir):
    path = photos_dir / "angry_man.jpg"
    rgb = np.asarray(Image.open(path).convert("RGB"))
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    gray = np.asarray(Image.open(path).convert("L"))
    inputs = [path, str(path), path.read_bytes(), Image.open(path), rgb, rgba, gray]
    results = [recognizer(x).faces for x in inputs]
    for faces in results:
        assert len(faces) == 1
        _check_face(faces[0])
    assert np.allclose(results[0][0].box, results[4][0].box)
    assert results[0][0].probs == pytest.approx(results[4][0].probs, abs=1e-6)


def test_no_face_is_an_empty_result(recognizer):
    result = recognizer(np.full((200, 300, 3), 128, np.uint8))
    assert result.faces == [] and result.to_rows() == [] and result.shape == (200, 300)


def test_call_returns_results(recognizer, photos_dir):
    path = photos_dir / "angry_man.jpg"
    result = recognizer(path)
    assert isinstance(result, Results) and result.source == str(path) and result.frame_index is None
    assert result.class_names == CLASSES and result.shape == result.image.shape[:2]
    assert set(result.timing) == {"detect", "classify"} and all(ms > 0 for ms in result.timing.values())
    assert recognizer(result.image, source="mine").source == "mine"
    assert recognizer(path.read_bytes()).source == ""


def test_detect_is_a_deprecated_alias(recognizer, photos_dir):
    path = photos_dir / "angry_man.jpg"
    with pytest.warns(DeprecationWarning, match=r"recognizer\(image\)"):
        faces = recognizer.detect(path)
    assert isinstance(faces, list) and isinstance(faces[0], Face)
    assert [f.to_dict() for f in faces] == [f.to_dict() for f in recognizer(path).faces]


def test_face_is_importable_from_its_old_homes():
    import ferkit
    from ferkit import predict, results

    assert ferkit.Face is Face is results.Face and predict.Prediction is results.Prediction


def test_classify_crops(recognizer, fer2013_small):
    data = load_dataset(fer2013_small)
    predictions = recognizer.classify(data.images[:10])
    assert len(predictions) == 10
    assert all(p.label in CLASSES for p in predictions)
    as_list = recognizer.classify([Image.fromarray(img) for img in data.images[:3]])
    assert [p.label for p in as_list] == [p.label for p in predictions[:3]]
    assert recognizer.classify([]) == []


def test_onnx_agrees_with_pytorch(model_file, fer2013_small, tmp_path):
    crops = load_dataset(fer2013_small).images[:64]
    torch_probs = Classifier.load(model_file, device="cpu").predict_proba(crops)
    onnx_probs = OnnxClassifier.load(model_file).predict_proba(crops)
    assert np.abs(torch_probs - onnx_probs).max() < 1e-4
    onnx_file = export_onnx(model_file, tmp_path / "m.onnx")
    from_file = OnnxClassifier.load(onnx_file)
    assert from_file.class_names == CLASSES
    assert np.abs(from_file.predict_proba(crops) - torch_probs).max() < 1e-4


def test_onnx_file_errors(tmp_path):
    with pytest.raises(ModelFileError):
        OnnxClassifier.load(tmp_path / "missing.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx at all")
    with pytest.raises(ModelFileError):
        OnnxClassifier.load(bad)


def test_cli_predict_text_json_out_csv(model_file, photos_dir, tmp_path, capsys):
    image = str(photos_dir / "angry_man.jpg")
    assert main(["predict", image, "--model", str(model_file)]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "face" in line]
    assert len(lines) == 1 and "angry_man.jpg: face 1 box" in lines[0]

    assert main(["predict", image, "--model", str(model_file), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["file"] == image and len(record["faces"]) == 1 and len(record["faces"][0]["box"]) == 4

    out, table = tmp_path / "annotated", tmp_path / "faces.csv"
    assert main(["predict", str(photos_dir / "expw"), "--model", str(model_file), "--out", str(out),
                 "--csv", str(table), "--no-progress"]) == 0
    capsys.readouterr()
    images = sorted(out.glob("*_annotated.jpg"))
    assert len(images) == 40
    assert (Image.open(images[0]).size
            == Image.open(photos_dir / "expw" / images[0].name.replace("_annotated", "")).size)
    rows = list(csv.DictReader(table.open()))
    assert len(rows) >= 90 and {"file", "face", "x1", "label", "p_happy"} <= set(rows[0])


def test_cli_export(model_file, tmp_path, capsys):
    out = tmp_path / "model.onnx"
    assert main(["export", "--model", str(model_file), "--out", str(out)]) == 0
    assert out.stat().st_size > 10_000 and "wrote" in capsys.readouterr().out


def test_cli_predict_bad_inputs(model_file, tmp_path, capsys):
    assert main(["predict", str(tmp_path / "missing.jpg"), "--model", str(model_file)]) == 2
    assert "missing.jpg" in capsys.readouterr().err
    broken = tmp_path / "broken.jpg"
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), "white").save(buffer, format="JPEG")
    broken.write_bytes(buffer.getvalue()[:200])
    assert main(["predict", str(broken), "--model", str(model_file)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "broken.jpg" in err[0]
    assert main(["predict", str(tmp_path), "--model", str(model_file)]) == 2  # folder with no images
    assert main(["predict", str(broken), "--model", str(tmp_path / "nope.safetensors")]) == 2
