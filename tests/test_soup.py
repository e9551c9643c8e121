"""Weight averaging (`ferkit.models.soup`, scripts/average_models.py)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from ferkit.errors import ConfigError
from ferkit.models.files import load_model, save_model
from ferkit.models.soup import average_models

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def twin_models(model_file, tmp_path):
    """The test model and a copy whose floating-point weights are all shifted by +1."""
    model, info = load_model(model_file)
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.add_(1.0)
    return model_file, save_model(tmp_path / "shifted.safetensors", model, info)


def test_average_is_the_weighted_mean_of_every_float_tensor(twin_models):
    a, b = twin_models
    first, shifted = load_model(a)[0].state_dict(), load_model(b)[0].state_dict()
    model, info = average_models([a, b], [0.75, 0.25])
    for name, tensor in model.state_dict().items():
        expected = 0.75 * first[name] + 0.25 * shifted[name] if tensor.is_floating_point() else first[name]
        torch.testing.assert_close(tensor, expected)
    assert info.temperature == 1.0 and info.metrics == {}
    assert info.extra == {"averaged_from": [str(a), str(b)], "weights": [0.75, 0.25]}


@pytest.mark.parametrize("weights, words", [([0.5], "2 numbers"), ([0.7, 0.7], "sum to 1"),
                                             ([1.5, -0.5], "≥ 0")])
def test_bad_weights_are_one_config_error(twin_models, weights, words):
    with pytest.raises(ConfigError, match=words):
        average_models(twin_models, weights)


def test_models_of_other_classes_are_refused(model_file, tmp_path):
    model, info = load_model(model_file)
    other = save_model(tmp_path / "other.safetensors", model, replace(info, class_names=list("abcdefg")))
    with pytest.raises(ConfigError, match="class_names"):
        average_models([model_file, other])
    with pytest.raises(ConfigError, match="at least two"):
        average_models([model_file])


def test_script_writes_a_model_that_loads(twin_models, tmp_path):
    out = tmp_path / "soup"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "average_models.py"), *map(str, twin_models),
                    "--out", str(out)], check=True, capture_output=True)
    model, info = load_model(out / "best.safetensors")
    assert info.extra["weights"] == [0.5, 0.5]
