"""Fine-tuning: --init starts training from a trained model's weights and input normalisation."""

from __future__ import annotations

import pytest
import torch

from ferkit.config import TrainConfig
from ferkit.data import load_dataset
from ferkit.data.splits import make_splits
from ferkit.errors import ConfigError
from ferkit.models.files import load_model
from ferkit.training import Trainer

QUICK = {"batch_size": 32, "threads": 2, "precision": "fp32", "device": "cpu"}


@pytest.fixture(scope="module")
def splits(fer2013_small):
    return make_splits(load_dataset(fer2013_small))


def test_init_loads_the_weights_and_normalisation(splits, model_file):
    trainer = Trainer(TrainConfig(model="seed_cnn", init=str(model_file), **QUICK), splits.train, splits.val)
    reference, info = load_model(model_file)
    for name, tensor in reference.state_dict().items():
        assert torch.equal(trainer.model.state_dict()[name], tensor), name
    assert (trainer.mean, trainer.std) == (info.mean, info.std)
    trainer.train_step(trainer.train_images[:8], trainer.train_targets[:8])  # and it trains on from there


@pytest.mark.parametrize("model, init, message", [
    ("fast_fer", "MODEL", "cannot start a fast_fer"),
    ("seed_cnn", "missing.safetensors", "init: missing.safetensors: no such model file"),
    ("seed_cnn", "fast_fer", "architecture without trained weights"),
])
def test_init_that_does_not_fit_is_refused(splits, model_file, model, init, message):
    cfg = TrainConfig(model=model, init=str(model_file) if init == "MODEL" else init, **QUICK)
    with pytest.raises(ConfigError, match=message):
        Trainer(cfg, splits.train, splits.val)


def test_init_with_other_classes_loads_all_but_the_head(model_file):
    from conftest import CKPLUS_CLASSES, make_grouped_faces
    from ferkit.models import create_model
    from ferkit.models.transfer import classifier_head

    data = make_grouped_faces(subjects=2, size=48)
    assert data.class_names == CKPLUS_CLASSES  # contempt instead of neutral, like CK+48
    # seed 1: the model file was made from seed 0's random weights, so a fresh head must differ from its
    trainer = Trainer(TrainConfig(model="seed_cnn", init=str(model_file), seed=1, **QUICK), data, data)
    reference = load_model(model_file)[0].state_dict()
    torch.manual_seed(1)
    fresh = create_model("seed_cnn", num_classes=7).state_dict()
    head = classifier_head(trainer.model) + "."
    for name, tensor in trainer.model.state_dict().items():
        expected = fresh[name] if name.startswith(head) else reference[name]
        assert torch.equal(tensor, expected), name
    assert not torch.equal(fresh[head + "weight"], reference[head + "weight"])
    assert "loaded every weight but the classifier head" in trainer.init_note


def test_init_at_another_input_size_is_refused(model_file):
    from conftest import make_grouped_faces

    data = make_grouped_faces(subjects=2, size=32)
    cfg = TrainConfig(model="seed_cnn", init=str(model_file), image_size=32, **QUICK)
    with pytest.raises(ConfigError, match="at 48px cannot start a seed_cnn at 32px"):
        Trainer(cfg, data, data)
