"""Seeded, deterministic train/validation splits: stratified, and grouped by subject (CK+)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError, DataError
from .dataset import PRIVATE_TEST, PUBLIC_TEST, TRAINING, FaceDataset, concatenated, relabelled


def _check_fraction(val_fraction: float) -> None:
    if not 0.0 < val_fraction < 1.0:
        raise ConfigError(f"val_fraction must be between 0 and 1, got {val_fraction}")


def stratified_split(
    labels: np.ndarray, val_fraction: float = 0.1, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
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


def group_kfold(
    labels: np.ndarray, groups: np.ndarray, k: int = 5, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """k (train_idx, val_idx) folds with every group (subject) on one side only, roughly stratified."""
    from sklearn.model_selection import StratifiedGroupKFold

    labels, groups = np.asarray(labels), np.asarray(groups)
    if len(labels) != len(groups):
        raise ConfigError(f"{len(labels)} labels but {len(groups)} groups")
    n_groups = len(np.unique(groups))
    if not 2 <= k <= n_groups:
        raise ConfigError(f"k={k} folds need 2 <= k <= the number of groups ({n_groups})")
    folds = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    # "least populated class has fewer members than n_splits": expected for rare classes
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        return [(np.sort(tr), np.sort(va)) for tr, va in folds.split(np.zeros(len(labels)), labels, groups)]


def stratified_kfold(labels: np.ndarray, k: int = 5, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """k (train_idx, test_idx) stratified folds over single images, for data without groups."""
    from sklearn.model_selection import StratifiedKFold

    labels = np.asarray(labels)
    if not 2 <= k <= len(labels):
        raise ConfigError(f"k={k} folds need 2 <= k <= the number of images ({len(labels)})")
    folds = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        return [(np.sort(tr), np.sort(te)) for tr, te in folds.split(np.zeros(len(labels)), labels)]


def group_split(
    labels: np.ndarray, groups: np.ndarray, val_fraction: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, val_idx) with no group on both sides: one fold of a round(1/val_fraction)-fold split."""
    _check_fraction(val_fraction)
    k = max(2, round(1 / val_fraction))
    return group_kfold(labels, groups, min(k, len(np.unique(np.asarray(groups)))), seed)[0]


@dataclass
class Splits:
    train: FaceDataset
    val: FaceDataset
    test: FaceDataset | None
    description: str

    def summary(self) -> dict:
        parts = {"train": self.train, "val": self.val, "test": self.test}
        return {"description": self.description, "class_names": self.train.class_names,
                **{k: {"size": len(v), "counts": v.class_counts()}
                   for k, v in parts.items() if v is not None}}


def make_splits(
    data: FaceDataset, val_fraction: float = 0.1, test_fraction: float = 0.2, seed: int = 0
) -> Splits:
    """The honest split for each kind of dataset.

    FER2013 (usages): train on Training, select on PublicTest, report PrivateTest.
    train/validation[/test] folders: validation selects; test reports (or, without a test folder,
    validation reports and a stratified slice of train selects).
    Grouped data (CK+ subjects): subject-independent test and validation splits.
    Otherwise: stratified test and validation splits.
    """
    usage = set(np.unique(data.usage)) if data.usage is not None else set()
    if {TRAINING, PUBLIC_TEST, PRIVATE_TEST} <= usage:
        return Splits(data.where_usage(TRAINING), data.where_usage(PUBLIC_TEST),
                      data.where_usage(PRIVATE_TEST),
                      "train on Training, select on PublicTest, report PrivateTest")
    if "train" in usage and ("validation" in usage or "test" in usage):
        train = data.where_usage("train")
        if "validation" in usage and "test" in usage:
            return Splits(train, data.where_usage("validation"), data.where_usage("test"),
                          "train on train/, select on validation/, report test/")
        held_out = "validation" if "validation" in usage else "test"
        tr, va = stratified_split(train.labels, val_fraction, seed)
        return Splits(train.subset(tr), train.subset(va), data.where_usage(held_out),
                      f"train on train/ minus a stratified {val_fraction:.0%} for selection, "
                      f"report {held_out}/")
    if data.groups is not None:
        rest, te = group_split(data.labels, data.groups, test_fraction, seed)
        rest_data = data.subset(rest)
        tr, va = group_split(rest_data.labels, rest_data.groups, val_fraction / (1 - test_fraction), seed + 1)
        return Splits(rest_data.subset(tr), rest_data.subset(va), data.subset(te),
                      f"subject-independent split: {test_fraction:.0%} of subjects report, "
                      f"{val_fraction:.0%} select, the rest train")
    rest, te = stratified_split(data.labels, test_fraction, seed)
    rest_data = data.subset(rest)
    tr, va = stratified_split(rest_data.labels, val_fraction / (1 - test_fraction), seed + 1)
    return Splits(rest_data.subset(tr), rest_data.subset(va), data.subset(te),
                  f"stratified split: {test_fraction:.0%} report, {val_fraction:.0%} select, the rest train")


def cap_per_class(data: FaceDataset, limit: int, seed: int = 0) -> FaceDataset:
    """At most `limit` images per (class, usage) pair, chosen at random: for quick runs and smoke tests."""
    if not limit:
        return data
    rng = np.random.default_rng(seed)
    usage = data.usage if data.usage is not None else np.zeros(len(data), dtype=object)
    keep = []
    for key in sorted({(int(label), str(u)) for label, u in zip(data.labels, usage)}):
        idx = np.flatnonzero((data.labels == key[0]) & (usage.astype(str) == key[1]))
        keep.append(rng.choice(idx, size=min(limit, len(idx)), replace=False))
    return data.subset(np.sort(np.concatenate(keep)))


def with_extra_training(splits: Splits, extra: FaceDataset, val_fraction: float = 0.1,
                        test_fraction: float = 0.2, seed: int = 0, max_per_class: int = 0) -> Splits:
    """`splits` with the training split of another dataset added to its training data.

    `extra` is split as `make_splits` splits it on its own (CK+ by subject), so its validation and test
    images stay unseen and can still report on it; images of classes `splits` lacks are dropped. A
    per-class cap applies after the split, which must not depend on it.
    """
    own = make_splits(extra, val_fraction, test_fraction, seed)
    added, dropped = relabelled(cap_per_class(own.train, max_per_class, seed), splits.train.class_names)
    if not len(added):
        raise DataError(f"{extra.meta.get('root') or extra.name}: its training split has no image of the "
                        f"classes trained on ({', '.join(splits.train.class_names)})")
    note = f"; plus the training split of {extra.name or 'another dataset'} ({len(added)} images"
    note += f", {own.description}"
    if dropped:
        note += ", dropped: " + ", ".join(f"{c} {n}" for c, n in dropped.items())
    return Splits(concatenated(splits.train, added), splits.val, splits.test, splits.description + note + ")")
