"""Evaluation metrics, label alignment and every plot."""

from __future__ import annotations

import numpy as np
import pytest

from ferkit import plots
from ferkit.data.dataset import FaceDataset
from ferkit.errors import ModelFileError
from ferkit.evaluate import Evaluation, align_labels

CLASSES = ["angry", "happy", "sad"]


def _is_png(path) -> bool:
    data = path.read_bytes()
    return data.startswith(b"\x89PNG") and len(data) > 3000


def test_evaluation_numbers():
    y_true = np.array([0, 0, 1, 2, 2])
    probs = np.array([[0.9, 0.05, 0.05], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.6, 0.2, 0.2]])
    e = Evaluation("test", CLASSES, y_true, probs.argmax(1), probs)
    assert e.accuracy == pytest.approx(3 / 5)
    assert e.confusion.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 1]]
    assert e.report()["happy"]["precision"] == pytest.approx(0.5)
    assert e.loss == pytest.approx(-np.mean(np.log([0.9, 0.2, 0.8, 0.8, 0.2])))
    assert "accuracy 0.6000" in e.report_text()


def test_top_losses_are_the_confident_mistakes_worst_first():
    y_true = np.array([0, 1, 2, 2, 1])
    probs = np.array([[0.9, 0.05, 0.05], [0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.6, 0.35, 0.05],
                      [0.3, 0.3, 0.4]])
    e = Evaluation("test", CLASSES, y_true, probs.argmax(1), probs)
    assert e.top_losses().tolist() == [3, 1, 4]  # p(label) 0.05, 0.2, 0.3; the right answers are left out
    assert e.top_losses(2).tolist() == [3, 1]


def test_align_labels_reorders_and_refuses_unknown_classes():
    data = FaceDataset(np.zeros((3, 48, 48), np.uint8), np.array([0, 1, 2]), ["sad", "angry", "happy"])
    assert align_labels(CLASSES, data).tolist() == [2, 0, 1]
    other = FaceDataset(np.zeros((2, 48, 48), np.uint8), np.array([0, 1]), ["angry", "contempt"])
    with pytest.raises(ModelFileError, match="contempt"):
        align_labels(CLASSES, other)


def test_every_plot_writes_a_png(tmp_path):
    history = [{"epoch": i, "train_acc": 0.3 + i / 20, "val_acc": 0.3 + i / 25, "train_loss": 2 - i / 10,
                "val_loss": 2 - i / 12} for i in range(1, 6)]
    assert _is_png(plots.plot_history(history, tmp_path / "curves.png"))
    cm = np.array([[5, 1, 0], [2, 7, 1], [0, 0, 4]])
    assert _is_png(plots.plot_confusion(cm, CLASSES, tmp_path / "cm.png"))
    assert _is_png(plots.plot_confusion(cm, CLASSES, tmp_path / "cmn.png", normalize=True))
    counts = {"train": {"angry": 10, "happy": 30, "sad": 5}, "test": {"angry": 3, "happy": 9, "sad": 1}}
    assert _is_png(plots.plot_class_distribution(counts, tmp_path / "dist.png"))
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (12, 48, 48), dtype=np.uint8)
    probs = rng.dirichlet(np.ones(3), 12)
    assert _is_png(plots.plot_samples(images, rng.integers(0, 3, 12), probs.argmax(1), probs, CLASSES,
                                      tmp_path / "samples.png"))
    assert _is_png(plots.plot_top_losses(images, np.array([3, 0]), rng.integers(0, 3, 12), probs, CLASSES,
                                         tmp_path / "top_losses.png"))
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporary files behind
