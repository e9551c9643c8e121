"""Cross-validation: subject-independent folds, validation taken from the training side, the summary."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import make_grouped_faces
from ferkit.cli import main
from ferkit.config import TrainConfig
from ferkit.crossval import cross_validate, fold_indices, fold_splits
from ferkit.errors import ConfigError

QUICK = {"model": "seed_cnn", "image_size": 16, "epochs": 1, "batch_size": 16, "threads": 1,
         "precision": "fp32", "device": "cpu"}


def test_every_image_is_tested_once_and_no_subject_is_on_both_sides():
    data = make_grouped_faces(subjects=9)
    tested = np.concatenate([test for _, test in fold_indices(data, 3, seed=0)])
    assert np.array_equal(np.sort(tested), np.arange(len(data)))
    for train, test in fold_indices(data, 3, seed=0):
        assert not set(data.groups[train]) & set(data.groups[test])


def test_validation_subjects_come_from_the_training_side_only():
    data = make_grouped_faces(subjects=12)
    for train_idx, test_idx in fold_indices(data, 4, seed=0):
        splits = fold_splits(data, train_idx, test_idx, val_share=0.25, seed=1)
        train, val, test = (set(s.groups) for s in (splits.train, splits.val, splits.test))
        assert val and train and not (val & test) and not (val & train) and not (train & test)
        assert len(splits.train) + len(splits.val) + len(splits.test) == len(data)


def test_data_without_subjects_is_refused_unless_stratified():
    data = make_grouped_faces(subjects=6)
    data.groups = None
    with pytest.raises(ConfigError, match="no subject groups.*--stratified"):
        fold_indices(data, 3, seed=0)
    tested = np.concatenate([test for _, test in fold_indices(data, 3, seed=0, stratified=True)])
    assert np.array_equal(np.sort(tested), np.arange(len(data)))


def test_cross_validate_writes_folds_and_a_pooled_summary(tmp_path):
    data = make_grouped_faces(subjects=9)
    lines: list[str] = []
    summary = cross_validate(TrainConfig(**QUICK), data, tmp_path, folds=3, progress=False, log=lines.append)
    assert [line.split(":")[0] for line in lines[:3]] == ["fold 1/3", "fold 2/3", "fold 3/3"]
    folds = summary["per_fold"]
    assert summary["mean_accuracy"] == pytest.approx(np.mean([f["test_acc"] for f in folds]))
    assert summary["std_accuracy"] == pytest.approx(np.std([f["test_acc"] for f in folds], ddof=1))
    confusion = np.array(summary["confusion_matrix"])
    assert confusion.sum() == len(data) == sum(f["test_images"] for f in folds)
    assert summary["pooled_accuracy"] == pytest.approx(np.trace(confusion) / len(data))
    assert list(summary["per_class_recall"]) == data.class_names
    assert json.loads((tmp_path / "summary.json").read_text())["folds"] == 3
    assert (tmp_path / "plots" / "confusion_pooled_normalised.png").stat().st_size > 0
    for fold in range(1, 4):
        run = tmp_path / f"fold_{fold:02d}"
        metrics = json.loads((run / "metrics.json").read_text())
        assert metrics["test"]["images"] == folds[fold - 1]["test_images"]
        assert (run / "best.safetensors").is_file() and not (run / "checkpoint.pt").exists()


def test_flip_tta_scores_the_folds_with_mirrored_faces_too(tmp_path, monkeypatch):
    from ferkit.models import wrappers

    calls = []
    original = wrappers.FlipAveraged.predict_proba
    monkeypatch.setattr(wrappers.FlipAveraged, "predict_proba",
                        lambda self, crops, batch_size=256: calls.append(len(crops)) or original(self, crops))
    data = make_grouped_faces(subjects=6)
    summary = cross_validate(TrainConfig(**QUICK), data, tmp_path, folds=2, progress=False,
                             log=lambda line: None, tta="flip")
    assert summary["tta"] == "flip"
    assert sum(calls) == sum(f["val_images"] + f["test_images"] for f in summary["per_fold"])


def test_seed_ensemble_scores_each_fold_with_the_mean_of_its_seeds(tmp_path):
    from ferkit.models.classifier import Classifier
    from ferkit.models.wrappers import Averaged

    data = make_grouped_faces(subjects=6)
    summary = cross_validate(TrainConfig(**QUICK), data, tmp_path, folds=2, progress=False,
                             log=lambda line: None, seeds=2)
    assert summary["seeds"] == 2
    for fold in (1, 2):
        fold_dir = tmp_path / f"fold_{fold:02d}"
        members = [Classifier.load(fold_dir / f"seed_{k}" / "best.safetensors", precision="fp32")
                   for k in (0, 1)]
        seeds = [json.loads((fold_dir / f"seed_{k}" / "config.json").read_text())["seed"] for k in (0, 1)]
        assert seeds == [0, 1]
        test = fold_indices(data, 2, seed=0)[fold - 1][1]
        crops = data.images[test]
        expected = (members[0].predict_proba(crops) + members[1].predict_proba(crops)) / 2
        assert np.allclose(Averaged(members).predict_proba(crops), expected, atol=1e-6)
        accuracy = float((expected.argmax(1) == data.labels[test]).mean())
        assert summary["per_fold"][fold - 1]["test_acc"] == pytest.approx(accuracy)
    with pytest.raises(ConfigError, match="seeds"):
        cross_validate(TrainConfig(**QUICK), data, tmp_path / "none", folds=2, seeds=0)
    other = members[1]
    other.info.class_names = list(reversed(other.info.class_names))
    with pytest.raises(ValueError, match="classes differ"):
        Averaged([members[0], other])


def _write_folder_dataset(root, names):
    from PIL import Image

    for label in ("happy", "sad"):
        (root / label).mkdir(parents=True)
        for i, name in enumerate(names):
            Image.fromarray(np.full((16, 16), 60 * i, np.uint8)).save(root / label / name)


def test_cli_refuses_data_without_subjects_in_one_line(tmp_path, capsys):
    _write_folder_dataset(tmp_path / "faces", [f"img{i}.png" for i in range(4)])
    code = main(["crossval", "--data", str(tmp_path / "faces"), "--folds", "2",
                 "--out", str(tmp_path / "cv")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("ferkit: error:") and "no subject groups" in err
    assert len(err.splitlines()) == 1 and not (tmp_path / "cv").exists()


def test_cli_refuses_a_folder_that_holds_a_cross_validation(tmp_path, capsys):
    (tmp_path / "cv" / "fold_01").mkdir(parents=True)
    code = main(["crossval", "--data", str(tmp_path), "--out", str(tmp_path / "cv")])
    assert code == 2 and "already holds a cross-validation" in capsys.readouterr().err
