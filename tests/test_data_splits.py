"""Splits: stratified, subject-grouped (CK+), k-fold; seeded and deterministic."""

from __future__ import annotations

import numpy as np
import pytest

from ferkit.data import FaceDataset, group_kfold, group_split, load_dataset, stratified_split
from ferkit.data.dataset import TRAINING
from ferkit.data.splits import Splits, make_splits, with_extra_training
from ferkit.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def ckplus(ckplus_dir):
    return load_dataset(ckplus_dir, cache=False)


def test_stratified_split_keeps_class_shares_and_is_seeded():
    labels = np.repeat(np.arange(4), [500, 50, 9, 1])
    train, val = stratified_split(labels, val_fraction=0.2, seed=1)
    assert np.array_equal(np.sort(np.concatenate([train, val])), np.arange(len(labels)))
    assert np.bincount(labels[val], minlength=4).tolist() == [100, 10, 2, 0]
    again = stratified_split(labels, val_fraction=0.2, seed=1)
    assert np.array_equal(train, again[0]) and np.array_equal(val, again[1])
    assert not np.array_equal(val, stratified_split(labels, val_fraction=0.2, seed=2)[1])
    with pytest.raises(ConfigError, match="val_fraction"):
        stratified_split(labels, val_fraction=1.0)


def test_group_split_keeps_subjects_apart(ckplus):
    train, val = group_split(ckplus.labels, ckplus.groups, val_fraction=0.2, seed=0)
    assert np.array_equal(np.sort(np.concatenate([train, val])), np.arange(len(ckplus)))
    assert not set(ckplus.groups[train]) & set(ckplus.groups[val])
    assert 0.1 < len(val) / len(ckplus) < 0.3
    assert set(ckplus.labels[val]) == set(range(ckplus.num_classes))  # roughly stratified
    again = group_split(ckplus.labels, ckplus.groups, val_fraction=0.2, seed=0)
    assert np.array_equal(val, again[1])
    assert not np.array_equal(val, group_split(ckplus.labels, ckplus.groups, val_fraction=0.2, seed=1)[1])


def test_group_kfold_is_subject_independent(ckplus):
    folds = group_kfold(ckplus.labels, ckplus.groups, k=5, seed=0)
    assert len(folds) == 5
    assert np.array_equal(np.sort(np.concatenate([val for _, val in folds])), np.arange(len(ckplus)))
    for train, val in folds:
        assert len(train) + len(val) == len(ckplus)
        assert not set(ckplus.groups[train]) & set(ckplus.groups[val])
    assert all(np.array_equal(a[1], b[1])
               for a, b in zip(folds, group_kfold(ckplus.labels, ckplus.groups, 5, 0), strict=True))
    with pytest.raises(ConfigError, match="number of groups"):
        group_kfold(ckplus.labels[:10], ckplus.groups[:10], k=5)


def _fer_like(n: int = 14, soft: bool = False) -> Splits:
    """A FER2013-like training split (usage Training, 7 classes, optional vote distributions)."""
    classes = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    labels = np.arange(n) % 7
    votes = np.full((n, 7), 1 / 7, np.float32) if soft else None
    data = FaceDataset(np.zeros((n, 16, 16), np.uint8), labels, classes,
                       usage=np.array([TRAINING] * n, dtype=object), soft_labels=votes, name="fer-like")
    return Splits(data, data.subset(slice(0, 7)), data.subset(slice(7, 14)), "fer-like split")


def test_extra_training_adds_only_the_training_subjects_of_the_other_dataset():
    from conftest import make_grouped_faces

    ck = make_grouped_faces(subjects=20, size=16)  # CK+-like: contempt instead of neutral, subjects
    own = make_splits(ck)
    base = _fer_like()
    mixed = with_extra_training(base, ck)
    added = mixed.train.subset(slice(len(base.train), None))
    kept = own.train.labels != ck.class_names.index("contempt")
    assert len(added) == kept.sum()
    assert np.array_equal(added.images, own.train.images[kept])
    names = [base.train.class_names[i] for i in added.labels]
    assert names == [ck.class_names[i] for i in own.train.labels[kept]]  # same class, new index
    assert set(added.usage) == {TRAINING}
    assert mixed.val is base.val and mixed.test is base.test
    assert "plus the training split of grouped-faces" in mixed.description
    assert f"dropped: contempt {(~kept).sum()}" in mixed.description


def test_extra_training_gets_one_hot_targets_beside_soft_ones():
    from conftest import make_grouped_faces

    mixed = with_extra_training(_fer_like(soft=True), make_grouped_faces(subjects=10, size=16))
    added = mixed.train.subset(slice(14, None))
    assert np.array_equal(added.soft_labels.argmax(1), added.labels)
    assert np.allclose(added.soft_labels.sum(1), 1) and added.soft_labels.max() == 1


def test_extra_training_without_a_shared_class_is_one_error():
    from conftest import make_grouped_faces

    other = make_grouped_faces(subjects=10, classes=["contempt", "pain"], size=16)
    with pytest.raises(DataError, match="no image of the classes trained on"):
        with_extra_training(_fer_like(), other)
