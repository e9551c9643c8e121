"""Model files: safetensors + JSON round trip, validation, and never unpickling."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch

from ferkit.errors import ModelFileError
from ferkit.models import create_model
from ferkit.models.classifier import Classifier
from ferkit.models.files import ModelInfo, load_model, save_model

CLASSES = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    model = create_model("seed_cnn", num_classes=7).eval()
    path = save_model(tmp_path / "m.safetensors", model, ModelInfo("seed_cnn", CLASSES, mean=0.5, std=0.25))
    return model, path


def test_round_trip_gives_identical_outputs(saved):
    model, path = saved
    loaded, info = load_model(path)
    assert info.class_names == CLASSES and info.in_size == 48
    x = torch.randn(4, 1, 48, 48)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


def test_classifier_probabilities(saved):
    _, path = saved
    clf = Classifier.load(path, device="cpu")
    crops = np.random.default_rng(0).integers(0, 256, (5, 48, 48), dtype=np.uint8)
    probs = clf.predict_proba(crops)
    assert probs.shape == (5, 7) and np.allclose(probs.sum(1), 1, atol=1e-5)
    bigger = np.stack([np.kron(c, np.ones((2, 2), dtype=np.uint8)) for c in crops])  # 96×96 is resized
    assert clf.predict_proba(bigger).shape == (5, 7)
    assert clf.predict_proba(np.zeros((0, 48, 48), np.uint8)).shape == (0, 7)


class _Tripwire:
    def __reduce__(self):
        return (open, ("UNPICKLED_MARKER", "w"))


def test_pickle_is_refused_without_unpickling(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name, payload in (("p.safetensors", pickle.dumps(_Tripwire())), ("z.safetensors", None)):
        path = tmp_path / name
        if payload is None:
            torch.save({"weights": torch.zeros(2), "trap": _Tripwire()}, path)
        else:
            path.write_bytes(payload)
        path.with_suffix(".json").write_text(json.dumps({"model_name": "seed_cnn", "class_names": CLASSES}))
        with pytest.raises(ModelFileError, match="never unpickles"):
            load_model(path)
    assert not (tmp_path / "UNPICKLED_MARKER").exists()


def test_corrupt_file(saved):
    _, path = saved
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="corrupt"):
        load_model(path)


def test_missing_file_sidecar_and_directory(saved, tmp_path):
    _, path = saved
    with pytest.raises(ModelFileError, match="no such model file"):
        load_model(tmp_path / "nope.safetensors")
    with pytest.raises(ModelFileError, match="is a directory"):
        load_model(tmp_path)
    path.with_suffix(".json").unlink()
    with pytest.raises(ModelFileError, match="sidecar"):
        load_model(path)


def test_mismatched_classes_or_size_are_refused(saved):
    _, path = saved
    meta = path.with_suffix(".json")
    raw = json.loads(meta.read_text())
    meta.write_text(json.dumps({**raw, "class_names": CLASSES + ["contempt"]}))
    with pytest.raises(ModelFileError, match="shape mismatch"):
        load_model(path)
    meta.write_text(json.dumps({**raw, "in_size": 64}))
    with pytest.raises(ModelFileError, match="do not fit"):
        load_model(path)
    meta.write_text(json.dumps({**raw, "model_name": "seed_dropout_cnn"}))
    with pytest.raises(ModelFileError, match="do not fit"):
        load_model(path)
    meta.write_text("{not json")
    with pytest.raises(ModelFileError, match="not a valid"):
        load_model(path)
