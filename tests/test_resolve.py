"""The model resolver: every kind of model spec, the classifiers it loads, and the commands that use it."""

from __future__ import annotations

import csv
import pickle
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from ferkit.cli import main
from ferkit.errors import ConfigError, ModelFileError
from ferkit.models import FaceClassifier, load_classifier, resolve
from ferkit.models.classifier import Classifier
from ferkit.models.files import BEST_FILE, bundled_model_path
from ferkit.models.int8 import Int8Classifier
from ferkit.models.onnx import OnnxClassifier, export_onnx
from ferkit.models.wrappers import backend_of
from ferkit.predict import load_classifier as load_classifier_from_predict

CLASSES = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


def _copy_model(source: Path, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(source, target)
    shutil.copy(source.with_suffix(".json"), target.with_suffix(".json"))
    return target


@pytest.fixture(scope="module")
def files(model_file, tmp_path_factory) -> dict[str, Path]:
    """One of each kind of file a spec may name (the model itself: an untrained seed_cnn)."""
    root = tmp_path_factory.mktemp("specs")
    run = root / "my-run"
    _copy_model(model_file, run / BEST_FILE)
    (root / "empty-dir").mkdir()
    (root / "notes.txt").write_text("not a model at all")
    (root / "weights.pt").write_bytes(pickle.dumps({"w": [1.0]}))
    return {"safetensors": model_file, "onnx": export_onnx(model_file, root / "exported.onnx"), "run": run,
            "empty-dir": root / "empty-dir", "txt": root / "notes.txt", "pickle": root / "weights.pt",
            "missing": root / "gone.safetensors"}


def _spec(files: dict[str, Path], spec: str) -> str | Path | None:
    """'@key' names a file of the fixture (as a str; '@@key' as a Path), anything else is the spec itself."""
    if spec.startswith("@@"):
        return files[spec[2:]]
    return str(files[spec[1:]]) if spec.startswith("@") else spec


@pytest.mark.parametrize("spec, kind, name, path", [
    ("default", "bundled", "default", "bundled:default"),
    (None, "bundled", "default", "bundled:default"),
    ("wild", "bundled", "wild", "bundled:wild"),
    ("fast_fer", "architecture", "fast_fer", None),
    ("seed_cnn", "architecture", "seed_cnn", None),
    ("@safetensors", "safetensors", "m", "@safetensors"),
    ("@@safetensors", "safetensors", "m", "@safetensors"),
    ("@onnx", "onnx", "exported", "@onnx"),
    ("@run", "run", "my-run", "@run/" + BEST_FILE),
    ("@@run", "run", "my-run", "@run/" + BEST_FILE),
])
def test_resolve_names_each_kind(files, spec, kind, name, path):
    source = resolve(spec if spec is None else _spec(files, spec))
    assert (source.kind, source.name) == (kind, name)
    if path is None:
        assert source.path is None
    elif path.startswith("bundled:"):
        assert source.path == bundled_model_path(path.partition(":")[2])
    else:
        key, _, child = path[1:].partition("/")
        assert source.path == (files[key] / child if child else files[key])


@pytest.mark.parametrize("spec, words", [
    ("@missing", ("gone.safetensors", "no such model file")),
    ("no_such_net", ("no_such_net", "no such model file", "'default'", "architecture", ".onnx",
                     "run directory")),
    ("runs/nowhere", ("runs/nowhere", "no such model file, run directory or architecture")),
    ("@empty-dir", ("empty-dir", "is a directory without best.safetensors", "expected")),
    ("@txt", ("notes.txt", "not a ferkit model file", ".safetensors or .onnx")),
    ("@pickle", ("weights.pt", "never unpickles")),
    ("", ("empty model name", "'default'")),
])
def test_resolve_refuses_with_one_clear_message(files, spec, words):
    with pytest.raises(ModelFileError) as info:
        resolve(_spec(files, spec))
    message = str(info.value)
    assert "\n" not in message and all(w in message for w in words), message


@pytest.mark.parametrize("spec, onnx, words", [
    ("fast_fer", False, ("fast_fer is an architecture without trained weights", ".safetensors file",
                         "'default'")),
    ("fast_fer", True, ("fast_fer is an architecture without trained weights", ".safetensors/.onnx file")),
    ("@onnx", False, ("exported.onnx", "cannot be loaded into PyTorch", ".safetensors")),
])
def test_weights_refuses_what_has_none_to_load(files, spec, onnx, words):
    with pytest.raises(ModelFileError) as info:
        resolve(_spec(files, spec)).weights(onnx=onnx)
    assert all(w in str(info.value) for w in words), str(info.value)


@pytest.mark.parametrize("spec, backend, engine", [
    ("default", "torch", Classifier),
    ("default", "onnx", OnnxClassifier),
    ("default", "int8", Int8Classifier),
    ("wild", "auto", Int8Classifier),
    (None, "torch", Classifier),
    ("@safetensors", "torch", Classifier),
    ("@@safetensors", "onnx", OnnxClassifier),
    ("@onnx", "auto", OnnxClassifier),
    ("@onnx", "torch", OnnxClassifier),  # an .onnx file only runs on ONNX Runtime
    ("@run", "torch", Classifier),
    ("@@run", "onnx", OnnxClassifier),
])
def test_load_classifier_gives_a_face_classifier(files, spec, backend, engine):
    classifier = load_classifier(spec if spec is None else _spec(files, spec), device="cpu", backend=backend)
    assert isinstance(backend_of(classifier), engine) and isinstance(classifier, FaceClassifier)
    crops = np.random.default_rng(0).integers(0, 256, (3, 60, 60), dtype=np.uint8)
    probs = classifier.predict_proba(crops, batch_size=2)
    assert probs.shape == (3, len(classifier.class_names)) and np.allclose(probs.sum(1), 1, atol=1e-5)
    assert np.asarray(classifier.logits(crops, batch_size=2)).shape == probs.shape
    assert classifier.class_names == classifier.info.class_names


def test_load_classifier_passes_classifiers_through_and_refuses_the_rest(files):
    onnx = OnnxClassifier.load(files["onnx"])
    assert load_classifier(onnx) is onnx
    assert load_classifier_from_predict is load_classifier  # the old import keeps working
    with pytest.raises(ModelFileError, match="fast_fer is an architecture without trained weights"):
        load_classifier("fast_fer")
    with pytest.raises(ConfigError, match="unknown backend"):
        load_classifier(files["safetensors"], backend="tensorrt")


# ---------------------------------------------------------------- commands

def _one_error_line(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("ferkit: error: "), lines
    return lines[0]


@pytest.fixture(scope="module")
def clip(photos_dir, tmp_path_factory) -> Path:
    """Five frames of angry_man.jpg as an mp4."""
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    frame = np.asarray(Image.open(photos_dir / "angry_man.jpg").convert("RGB").resize((320, 400)))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (320, 400))
    for _ in range(5):
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def test_cli_predict_with_the_default_model(photos_dir, capsys):
    assert main(["predict", str(photos_dir / "angry_man.jpg"), "--model", "default"]) == 0
    assert "angry_man.jpg: face 1 box" in capsys.readouterr().out


def test_cli_video_with_the_default_model(clip, tmp_path, capsys):
    table = tmp_path / "out.csv"
    assert main(["video", str(clip), "--model", "default", "--csv", str(table), "--max-frames", "3",
                 "--no-progress"]) == 0
    rows = list(csv.DictReader(table.open()))
    assert rows and {r["frame"] for r in rows} <= {"0", "1", "2"}, rows[:1]


@pytest.mark.parametrize("spec, name", [("default", "fast_fer"), ("wild", "resnet_fer"),
                                        ("@safetensors", "seed_cnn"), ("@run", "seed_cnn"),
                                        ("vgg_fer", "vgg_fer")])
def test_cli_summary_takes_every_spec_with_an_architecture(files, spec, name, capsys):
    assert main(["summary", "--model", _spec(files, spec)]) == 0
    out = capsys.readouterr().out
    assert name in out and "Conv2d" in out


@pytest.mark.parametrize("spec, written", [(None, "default.onnx"), ("default", "default.onnx"),
                                           ("@safetensors", "m.onnx"), ("@run", "my-run.onnx")])
def test_cli_export_takes_default_files_and_runs(files, spec, written, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["export"] + ([] if spec is None else ["--model", _spec(files, spec)])) == 0
    assert (tmp_path / written).stat().st_size > 10_000 and f"wrote {written}" in capsys.readouterr().out
    assert OnnxClassifier.load(tmp_path / written).class_names == CLASSES


@pytest.mark.parametrize("command, spec, words", [
    ("export", "@onnx", ("exported.onnx", "cannot be loaded into PyTorch")),
    ("export", "fast_fer", ("fast_fer is an architecture without trained weights",)),
    ("summary", "@onnx", ("exported.onnx", "cannot be loaded into PyTorch")),
    ("predict", "fast_fer", ("fast_fer is an architecture without trained weights",)),
    ("evaluate", "no_such_net", ("no_such_net", "run directory")),
])
def test_cli_refuses_specs_a_command_cannot_use(files, command, spec, words, photos_dir, tmp_path, capsys):
    argv = {"export": ["export", "--out", str(tmp_path / "x.onnx")], "summary": ["summary"],
            "predict": ["predict", str(photos_dir / "angry_man.jpg")],
            "evaluate": ["evaluate", "--data", str(tmp_path)]}[command]
    assert main([*argv, "--model", _spec(files, spec)]) == 2
    line = _one_error_line(capsys)
    assert all(w in line for w in words), line
    assert not (tmp_path / "x.onnx").exists()
