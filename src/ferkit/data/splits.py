"""Seeded, deterministic train/validation splits: stratified, and grouped by subject (CK+)."""

from __future__ import annotations

import warnings

import numpy as np

from ..errors import ConfigError


def _check_fraction(val_fraction: float) -> None:
    if not 0.0 < val_fraction < 1.0:
        raise ConfigError(f"val_fraction must be between 0 and 1, got {val_fraction}")


def stratified_split(labels: np.ndarray, val_fraction: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train_idx, val_idx) with round(val_fraction × n_c) of every class c in val.

    Done per class by hand rather than with sklearn, so classes with one or two images work.
    """
    _check_fraction(val_fraction)
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    val = []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        val.append(members[: int(round(len(members) * val_fraction))])
    val_idx = np.sort(np.concatenate(val)) if val else np.array([], dtype=np.int64)
    return np.setdiff1d(np.arange(len(labels)), val_idx), val_idx


def group_kfold(labels: np.ndarray, groups: np.ndarray, k: int = 5, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """k (train_idx, val_idx) folds with every group (subject) on one side only, roughly stratified."""
    from sklearn.model_selection import StratifiedGroupKFold

    labels, groups = np.asarray(labels), np.asarray(groups)
    if len(labels) != len(groups):
        raise ConfigError(f"{len(labels)} labels but {len(groups)} groups")
    n_groups = len(np.unique(groups))
    if not 2 <= k <= n_groups:
        raise ConfigError(f"k={k} folds need 2 <= k <= the number of groups ({n_groups})")
    folds = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # "least populated class has fewer members than n_splits": expected for rare classes
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        return [(np.sort(tr), np.sort(va)) for tr, va in folds.split(np.zeros(len(labels)), labels, groups)]


def group_split(
    labels: np.ndarray, groups: np.ndarray, val_fraction: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, val_idx) with no group on both sides: one fold of a round(1/val_fraction)-fold split."""
    _check_fraction(val_fraction)
    k = max(2, round(1 / val_fraction))
    return group_kfold(labels, groups, min(k, len(np.unique(np.asarray(groups)))), seed)[0]
