"""Temperature scaling, ECE, the temperature in model files (safetensors and ONNX), `ferkit calibrate`, and
flip test-time augmentation."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from ferkit import Recognizer
from ferkit.cli import main
from ferkit.errors import ConfigError, ModelFileError
from ferkit.models.calibration import (
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
    softmax,
)
from ferkit.models.classifier import Classifier
from ferkit.models.files import (
    bundled_model_path,
    read_info,
    read_temperature,
    sidecar_path,
    write_temperature,
)
from ferkit.models.onnx import OnnxClassifier, export_onnx
from ferkit.models.resolver import load_classifier
from ferkit.models.wrappers import FlipAveraged, TemperatureScaled, backend_of, with_tta


def _sample_labels(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One label per row, drawn from that row's distribution."""
    return (probs.cumsum(axis=1) > rng.random((len(probs), 1))).argmax(axis=1)


# ---------------------------------------------------------------- the numbers

@pytest.mark.parametrize("true_t", [0.5, 2.0])
def test_fit_temperature_recovers_a_known_temperature(true_t):
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, size=(20_000, 7))
    labels = _sample_labels(softmax(logits / true_t), rng)
    fitted = fit_temperature(logits, labels)
    assert fitted == pytest.approx(true_t, rel=0.05)
    assert negative_log_likelihood(logits, labels, fitted) < negative_log_likelihood(logits, labels)


def test_ece_of_calibrated_and_overconfident_predictions():
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.full(7, 0.5), size=20_000)
    labels = _sample_labels(probs, rng)  # the labels follow the probabilities: calibrated
    assert expected_calibration_error(probs, labels) < 0.02
    overconfident = softmax(np.log(probs) * 4)  # same arg max, far sharper
    assert expected_calibration_error(overconfident, labels) > 0.15


def test_ece_by_hand():
    # two faces at confidence 0.9 (one right) and one at 0.6 (right): (2·|0.9−0.5| + 1·|0.6−1|) / 3
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6]])
    assert expected_calibration_error(probs, np.array([0, 1, 1])) == pytest.approx((0.8 + 0.4) / 3)


def test_temperature_scaled_divides_the_logits(model_file):
    crops = np.random.default_rng(2).integers(0, 256, (6, 48, 48), dtype=np.uint8)
    network = Classifier.load(model_file, device="cpu")
    scaled = TemperatureScaled(network, 1.7)
    expected = torch.softmax(network.logits(crops) / 1.7, dim=1).numpy()
    assert np.abs(scaled.predict_proba(crops) - expected).max() < 1e-6
    assert (scaled.predict_proba(crops).argmax(1) == network.predict_proba(crops).argmax(1)).all()
    one_by_one = np.concatenate([scaled.predict_proba(crops[i:i + 1]) for i in range(len(crops))])
    assert one_by_one.dtype == np.float32 and np.abs(one_by_one - expected).max() < 1e-6  # the one-face path
    with pytest.raises(ValueError, match="finite number > 0"):
        TemperatureScaled(network, 0.0)


# ---------------------------------------------------------------- the temperature in model files

@pytest.fixture
def calibrated_copy(model_file, tmp_path):
    path = tmp_path / "m.safetensors"
    write_temperature(model_file, 1.5, path)
    return path


def test_write_temperature_keeps_weights_and_description(model_file, calibrated_copy):
    before, after = load_file(str(model_file)), load_file(str(calibrated_copy))
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert sidecar_path(calibrated_copy).read_bytes() == sidecar_path(model_file).read_bytes()
    assert read_temperature(model_file) == 1.0 and read_temperature(calibrated_copy) == 1.5
    assert read_info(calibrated_copy).temperature == 1.5
    assert "temperature" not in json.loads(sidecar_path(calibrated_copy).read_text())


def test_load_classifier_applies_the_temperature(model_file, calibrated_copy):
    crops = np.random.default_rng(3).integers(0, 256, (5, 48, 48), dtype=np.uint8)
    classifier = load_classifier(calibrated_copy, backend="torch")
    assert isinstance(classifier, TemperatureScaled) and classifier.temperature == 1.5
    raw = load_classifier(calibrated_copy, backend="torch", calibrated=False)
    assert np.abs(classifier.predict_proba(crops) - softmax(np.asarray(raw.logits(crops)) / 1.5)).max() < 1e-6
    assert not isinstance(load_classifier(model_file, backend="torch"), TemperatureScaled)  # T = 1


def test_onnx_export_carries_the_temperature(calibrated_copy, tmp_path):
    crops = np.random.default_rng(4).integers(0, 256, (5, 48, 48), dtype=np.uint8)
    onnx_path = export_onnx(calibrated_copy, tmp_path / "m.onnx")
    from_onnx = load_classifier(onnx_path)
    assert isinstance(backend_of(from_onnx), OnnxClassifier) and from_onnx.info.temperature == 1.5
    from_torch = load_classifier(calibrated_copy, backend="torch")
    assert np.abs(from_onnx.predict_proba(crops) - from_torch.predict_proba(crops)).max() < 1e-4


def test_bundled_model_is_calibrated_on_both_backends():
    temperature = read_temperature(bundled_model_path())
    assert temperature != 1.0 and 0.5 < temperature < 2.0
    crops = np.random.default_rng(5).integers(0, 256, (8, 48, 48), dtype=np.uint8)
    on_torch = load_classifier("default", backend="torch")
    on_onnx = load_classifier("default", backend="onnx")
    assert on_torch.temperature == on_onnx.temperature == temperature
    network = Classifier.load(bundled_model_path(), device="cpu")
    expected = softmax(network.logits(crops).numpy() / temperature)
    assert np.abs(on_torch.predict_proba(crops) - expected).max() < 1e-5
    assert np.abs(on_onnx.predict_proba(crops) - expected).max() < 1e-4


def test_bad_temperature_in_a_header_is_refused(model_file, tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "bad.safetensors"
    save_file(load_file(str(model_file)), str(path), metadata={"format": "ferkit", "temperature": "-2"})
    shutil.copy(sidecar_path(model_file), sidecar_path(path))
    with pytest.raises(ModelFileError, match="temperature"):
        load_classifier(path, backend="torch")


# ---------------------------------------------------------------- ferkit calibrate

def test_calibrate_cli_round_trip(model_file, fer2013_small, tmp_path, capsys):
    out = tmp_path / "calibrated.safetensors"
    args = ["calibrate", "--model", str(model_file), "--data", str(fer2013_small), "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "fitted on val (PublicTest), 210 images" in printed and f"wrote {out}" in printed
    temperature = read_temperature(out)
    assert f"temperature {temperature:.4f}" in printed and read_temperature(model_file) == 1.0
    before, after = load_file(str(model_file)), load_file(str(out))
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert main(["evaluate", "--model", str(out), "--data", str(fer2013_small), "--split", "val",
                 "--out", str(tmp_path / "eval")]) == 0
    assert "ECE" in capsys.readouterr().out
    assert (tmp_path / "eval" / "plots" / "reliability_val.png").stat().st_size > 5000


@pytest.mark.parametrize("extra, fragment", [
    (["--split", "test"], "fit on --split val"),
    (["--model", "default"], "--out FILE"),
    (["--out", "x.onnx"], "must end in .safetensors"),
    (["--model", "no_such.safetensors"], "no such model file"),
])
def test_calibrate_cli_bad_input(model_file, fer2013_small, capsys, extra, fragment):
    args = ["calibrate", "--model", str(model_file), "--data", str(fer2013_small)] + extra
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ferkit: error:") and "\n" not in err and fragment in err


def test_calibrate_refuses_labelled_photos(model_file, tmp_path, capsys):
    (tmp_path / "annotations.csv").write_text("file,left,top,right,bottom,label\n")
    assert main(["calibrate", "--model", str(model_file), "--data", str(tmp_path),
                 "--out", str(tmp_path / "m.safetensors")]) == 2
    assert "labelled photos are for measuring" in capsys.readouterr().err


# ---------------------------------------------------------------- flip test-time augmentation

def test_flip_tta_is_the_mean_of_the_two_passes(model_file):
    crops = np.random.default_rng(6).integers(0, 256, (5, 48, 48), dtype=np.uint8)
    network = Classifier.load(model_file, device="cpu")
    flipped = FlipAveraged(network)
    expected = (network.predict_proba(crops) + network.predict_proba(crops[:, :, ::-1].copy())) / 2
    assert np.abs(flipped.predict_proba(crops) - expected).max() < 1e-6
    assert np.abs(flipped.predict_proba(crops[:, :, ::-1]) - flipped.predict_proba(crops)).max() < 1e-5
    assert np.abs(softmax(flipped.logits(crops)) - expected).max() < 1e-5
    assert flipped.predict_proba(crops[:0]).shape == (0, 7)


def test_recognizer_tta_option(model_file):
    assert isinstance(Recognizer(model_file, detector="haar", backend="torch", tta="flip").classifier,
                      FlipAveraged)
    assert Recognizer(model_file, detector="haar", backend="torch").classifier.__class__ is Classifier
    with pytest.raises(ConfigError, match="test-time augmentation"):
        with_tta(Classifier.load(model_file, device="cpu"), "rotate")
