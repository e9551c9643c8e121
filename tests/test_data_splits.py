"""Splits: stratified, subject-grouped (CK+), k-fold; seeded and deterministic."""

from __future__ import annotations

import numpy as np
import pytest

from ferkit.data import group_kfold, group_split, load_dataset, stratified_split
from ferkit.errors import ConfigError


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
