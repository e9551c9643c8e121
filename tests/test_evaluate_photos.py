"""Cross-dataset evaluation: labelled boxes (detect + match, or the boxes), photo folders, crop datasets,
one table, and one-line errors naming the CSV row for bad annotation files. Small subsets: seconds each."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ferkit.cli import main
from ferkit.errors import DataError
from ferkit.evaluate_photos import (
    PhotoEvaluation,
    drop_unknown_classes,
    evaluate_boxes,
    evaluate_crops,
    evaluate_photo_folder,
    format_table,
    match_detections,
    match_squared,
    read_box_csv,
)
from ferkit.faces import Detection

CLASSES = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
HEADER = ["file", "left", "top", "right", "bottom", "label"]


@pytest.fixture(scope="module")
def recognizer():
    from ferkit.predict import Recognizer

    return Recognizer(backend="torch")


@pytest.fixture(scope="module")
def expw_small(datasets_dir, tmp_path_factory) -> Path:
    """10 labelled faces of expw-dev (two per class for five classes), copied with a CSV of their own."""
    src = datasets_dir / "expw-dev"
    if not (src / "annotations.csv").is_file():
        pytest.skip("expw-dev not found")
    with open(src / "annotations.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    picked = [r for label in ("angry", "happy", "sad", "surprise", "neutral")
              for r in [r for r in rows if r["label"] == label][:2]]
    dst = tmp_path_factory.mktemp("expw_small")
    (dst / "images").mkdir()
    for r in picked:
        shutil.copy(src / r["file"], dst / r["file"])
    _write_csv(dst / "annotations.csv", [[r[k] for k in HEADER] for r in picked])
    return dst


def _write_csv(path: Path, rows: list[list], header: list[str] = HEADER) -> Path:
    with open(path, "w", newline="") as handle:
        csv.writer(handle).writerows([header, *rows])
    return path


def test_match_detections_is_one_to_one():
    truth = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]])
    boxes = np.array([[0, 0, 10, 10], [100, 100, 110, 110]])
    assert match_detections(truth, boxes).tolist() == [0, -1, -1]
    assert match_detections(truth, np.zeros((0, 4))).tolist() == [-1, -1, -1]


def test_match_squared_squares_the_detections_first():
    labelled = [[0, 0, 100, 100], [300, 300, 310, 310]]
    narrow = [40, 0, 60, 100]  # IoU 0.2 with the first label as it is, 1.0 once squared
    assert match_detections(np.array(labelled[:1]), np.array([narrow])).tolist() == [-1]
    assert match_squared(labelled, [narrow]).tolist() == [0, -1]
    assert match_squared(labelled, []).tolist() == [-1, -1]


def test_missed_faces_count_as_wrong():
    y_true, y_pred = np.array([0, 0, 1, 1]), np.array([0, -1, 1, 0])
    probs = np.eye(2, dtype=np.float32)[np.maximum(y_pred, 0)]
    e = PhotoEvaluation("all", ["angry", "happy"], y_true, y_pred, probs, dataset="x", mode="detect",
                        found=y_pred >= 0, sources=["a", "b", "c", "d"])
    assert e.accuracy == 0.5 and e.found_rate == 0.75 and e.found_accuracy == pytest.approx(2 / 3)
    assert e.per_class_recall == {"angry": 0.5, "happy": 0.5} and e.macro_recall == 0.5
    assert e.missed == ["b"] and e.confusion_names == ["angry", "happy", "no face"]
    assert e.top_losses().tolist() == [3]  # the missed face has no probabilities: not a "mistake" to show
    assert e.confusion_with_misses.tolist() == [[1, 0, 1], [1, 1, 0], [0, 0, 0]]
    row = format_table([e], "m").splitlines()[2]
    assert row.startswith("| x | all | detect | 4 | 50.0 % | 50.0 % | 75.0 % | 66.7 % |")


def test_boxes_full_path_on_expw(recognizer, expw_small):
    e = evaluate_boxes(recognizer, expw_small / "annotations.csv", progress=False)
    assert e.dataset == "expw_small0" and e.mode == "detect" and len(e.y_true) == 10
    assert e.found_rate >= 0.7  # MTCNN finds ~95 % of expw-dev
    assert all(p == -1 for p in e.y_pred[~e.found])
    assert e.crops.shape == (10, 48, 48) and not e.crops[~e.found].any() and e.crops[e.found].any()
    assert sorted(e.per_class_recall) == ["angry", "happy", "neutral", "sad", "surprise"]


def test_labelled_boxes_are_cropped_as_the_recognizer_crops(recognizer, expw_small):
    e = evaluate_boxes(recognizer, expw_small, match="boxes", progress=False)
    assert e.mode == "boxes" and e.found.all() and len(e.y_true) == 10
    face = read_box_csv(expw_small / "annotations.csv")[0]
    from ferkit.data.images import load_image

    crop = recognizer.crops(load_image(face.path, mode="rgb"), [Detection(face.box, 1.0)])
    expected = recognizer.classifier.predict_proba(crop)[0]
    np.testing.assert_allclose(e.probs[0], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(e.crops[0], crop[0])  # the crop the classifier saw, for top_losses


def test_image_column_and_several_faces_per_photo(recognizer, photos_dir, tmp_path):
    src = photos_dir / "expw"
    with open(src / "annotations.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    first = rows[0]["image"]
    mine = [[str(src / r["image"]), r["left"], r["top"], r["right"], r["bottom"], r["label"]]
            for r in rows if r["image"] == first]
    path = _write_csv(tmp_path / "annotations.csv", mine, ["image", *HEADER[1:]])
    e = evaluate_boxes(recognizer, path, progress=False)
    assert len(e.y_true) == len(mine) >= 2


def test_photo_folder_largest_face_and_no_face(recognizer, photos_dir, tmp_path):
    for label, name in (("angry", "angry_man.jpg"), ("sad", "crying_woman.jpg")):
        (tmp_path / label).mkdir()
        shutil.copy(photos_dir / name, tmp_path / label / name)
    (tmp_path / "happy").mkdir()
    Image.new("RGB", (120, 120), (128, 128, 128)).save(tmp_path / "happy" / "blank.png")
    e = evaluate_photo_folder(recognizer, tmp_path, progress=False)
    assert e.mode == "largest" and len(e.y_true) == 3
    assert e.found.tolist() == [True, False, True]  # sorted: angry/, happy/, sad/
    assert e.missed == [str(tmp_path / "happy" / "blank.png")]
    assert e.y_pred[1] == -1 and e.accuracy <= 2 / 3


def test_crop_dataset_drops_classes_the_model_lacks(ckplus_dir, recognizer):
    from ferkit.data import load_dataset

    data = load_dataset(ckplus_dir, image_size=48)
    kept, dropped = drop_unknown_classes(data, CLASSES)
    assert dropped == {"contempt": 54} and len(kept) == len(data) - 54
    small = kept.subset(np.arange(0, len(kept), 20))
    e = evaluate_crops(recognizer.classifier, small, "all", "CK+48")
    assert e.found.all() and len(e.y_true) == len(small) and e.dataset == "CK+48"


def test_cli_several_datasets_one_table(expw_small, fer2013_small, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["evaluate", "--model", "default", "--data", str(expw_small), str(fer2013_small), "--data",
            str(expw_small / "annotations.csv"), "--boxes", "--no-progress", "--out", str(out)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "test (PrivateTest)" in text and "| expw_small0 | all | boxes | 10 |" in text
    summary = json.loads((out / "summary.json").read_text())
    assert [d["folder"] for d in summary["datasets"]] == ["expw_small0-boxes-1", "fer2013_small0",
                                                            "expw_small0-boxes-3"]
    metrics = json.loads((out / "fer2013_small0" / "metrics.json").read_text())
    assert metrics["test"]["images"] == 7 * 30 and "macro_recall" in metrics["test"]
    assert (out / "expw_small0-boxes-1" / "plots" / "confusion_all_normalised.png").is_file()
    assert (out / "table.md").read_text().count("\n") == 5
    mistakes = list(csv.DictReader(open(out / "fer2013_small0" / "top_losses_test.csv")))
    assert 0 < len(mistakes) <= 24 and all(m["label"] != m["answer"] for m in mistakes)
    assert [float(m["p_label"]) for m in mistakes] == sorted(float(m["p_label"]) for m in mistakes)
    assert (out / "fer2013_small0" / "plots" / "top_losses_test.png").is_file()


def test_cli_detect_and_match_without_out_writes_nothing(expw_small, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["evaluate", "--model", "default", "--data", str(expw_small), "--no-progress"]) == 0
    assert "| expw_small0 | all | detect | 10 |" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []


def test_cli_several_models_are_one_ensemble(fer2013_small, tmp_path, capsys):
    """`--model A B` scores the mean of the two models' calibrated probabilities; models whose classes
    differ are one error line."""
    import torch

    from ferkit.data import load_dataset
    from ferkit.models import create_model
    from ferkit.models.files import ModelInfo, save_model
    from ferkit.models.wrappers import Averaged
    from ferkit.predict import load_classifier

    torch.manual_seed(0)
    other = save_model(tmp_path / "other.safetensors", create_model("fast_fer").eval(),
                       ModelInfo("fast_fer", CLASSES))
    out = tmp_path / "out"
    assert main(["evaluate", "--model", "default", str(other), "--data", str(fer2013_small),
                 "--no-progress", "--out", str(out)]) == 0
    assert f"default + {other}" in capsys.readouterr().out
    test = load_dataset(fer2013_small).where_usage("PrivateTest")
    members = [load_classifier(m, device="cpu", backend="torch") for m in ("default", other)]
    expected = (Averaged(members).predict_proba(test.images).argmax(1) == test.labels).mean()
    metrics = json.loads((out / "metrics.json").read_text())  # one dataset: its files in --out itself
    assert metrics["test"]["accuracy"] == pytest.approx(expected)

    five = save_model(tmp_path / "five.safetensors", create_model("fast_fer", num_classes=5).eval(),
                      ModelInfo("fast_fer", CLASSES[:5]))
    assert main(["evaluate", "--model", "default", str(five), "--data", str(fer2013_small),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ferkit: error: --model: the classifiers' classes differ")


def _bad_rows(expw_small: Path) -> dict[str, tuple[list[list], list[str], str]]:
    with open(expw_small / "annotations.csv", newline="") as handle:
        good = [[r[k] for k in HEADER] for r in csv.DictReader(handle)][:3]
    name = good[0][0]
    return {
        "missing-column": (good, ["file", "left", "top", "right", "label"], "row 1: no 'bottom' column"),
        "box-outside": (good + [[name, 500, 500, 600, 600, "happy"]], HEADER, "row 5: box"),
        "empty-box": (good + [[name, 50, 50, 40, 60, "happy"]], HEADER, "row 5: empty box"),
        "unknown-label": (good[:1] + [[name, 10, 10, 50, 50, "bored"]] + good[1:], HEADER,
                          "row 3: unknown label 'bored'"),
        "missing-file": (good + [["images/nope.jpg", 1, 1, 20, 20, "sad"]], HEADER, "row 5: "),
        "not-a-number": (good + [[name, "ten", 1, 20, 20, "sad"]], HEADER, "row 5: box"),
        "missing-value": (good + [[name, 1, 1, 20, "", "sad"]], HEADER, "row 5: missing value"),
    }


@pytest.mark.parametrize("case", ["missing-column", "box-outside", "empty-box", "unknown-label",
                                  "missing-file", "not-a-number", "missing-value"])
def test_bad_annotations_one_line_naming_the_row(case, expw_small, tmp_path, capsys):
    rows, header, words = _bad_rows(expw_small)[case]
    folder = tmp_path / "bad"
    shutil.copytree(expw_small / "images", folder / "images")
    path = _write_csv(folder / "annotations.csv", rows, header)
    with pytest.raises(DataError, match=words.replace("(", r"\(")):
        read_box_csv(path)
    out = tmp_path / "out"
    assert main(["evaluate", "--model", "default", "--data", str(expw_small), str(path), "--no-progress",
                 "--boxes", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ferkit: error:") and f"annotations.csv: {words}" in err[0]
    assert not out.exists()
