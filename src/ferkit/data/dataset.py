"""The one thing every dataset reader returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Official FER2013 usages. A dataset's `usage` column holds these strings (or is None).
TRAINING, PUBLIC_TEST, PRIVATE_TEST = "Training", "PublicTest", "PrivateTest"
USAGES = (TRAINING, PUBLIC_TEST, PRIVATE_TEST)
# Usages of generic <root>/<split>/<class>/ folder datasets (train/, val/ or validation/, test/).
TRAIN, VALIDATION, TEST = "train", "validation", "test"


@dataclass
class FaceDataset:
    """Images with labels.

    images: uint8 array N×H×W (grayscale faces, all one size).
    labels: int64 array N, indices into `class_names`.
    class_names: canonical names (see `ferkit.data.classes`), in label order.
    usage: per-image split name (Training / PublicTest / PrivateTest, or "train"/"validation"
        for folder layouts) or None when the data has no split of its own.
    groups: per-image group id (CK+ subject, e.g. "S005") or None.
    sources: per-image origin (relative file path, or "file.csv:row") for error messages and reports.
    soft_labels: float32 N×C target distributions (e.g. FER+ votes, rows summing to 1) or None;
        `labels` then holds the majority.
    """

    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    usage: np.ndarray | None = None
    groups: np.ndarray | None = None
    sources: np.ndarray | None = None
    soft_labels: np.ndarray | None = None
    name: str = ""
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.images)
        for key in ("labels", "usage", "groups", "sources", "soft_labels"):
            value = getattr(self, key)
            if value is not None and len(value) != n:
                raise ValueError(f"{key} has {len(value)} entries for {n} images")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_size(self) -> tuple[int, int]:
        return tuple(self.images.shape[1:3])  # type: ignore[return-value]

    def subset(self, index: np.ndarray | slice) -> FaceDataset:
        def take(a):
            return None if a is None else a[index]

        return FaceDataset(
            images=self.images[index],
            labels=self.labels[index],
            class_names=list(self.class_names),
            usage=take(self.usage),
            groups=take(self.groups),
            sources=take(self.sources),
            soft_labels=take(self.soft_labels),
            name=self.name,
            meta=dict(self.meta),
        )

    def where_usage(self, *usages: str) -> FaceDataset:
        if self.usage is None:
            raise ValueError(f"{self.name or 'dataset'} has no usage/split column")
        return self.subset(np.isin(self.usage, usages))

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.labels, minlength=self.num_classes)
        return {name: int(c) for name, c in zip(self.class_names, counts)}

    def only_classes(self, class_names: list[str]) -> tuple[FaceDataset, dict[str, int]]:
        """The images whose class is in `class_names` (labels unchanged), and how many of each other class
        were dropped."""
        dropped = {c: n for c, n in self.class_counts().items() if c not in class_names and n}
        if not dropped:
            return self, {}
        known = [i for i, c in enumerate(self.class_names) if c in class_names]
        return self.subset(np.isin(self.labels, known)), dropped


def relabelled(data: FaceDataset, class_names: list[str]) -> tuple[FaceDataset, dict[str, int]]:
    """`data` with its labels as indices into `class_names`; images of other classes dropped, counted."""
    kept, dropped = data.only_classes(class_names)
    new_index = np.array([class_names.index(c) if c in class_names else -1 for c in data.class_names])
    soft = None
    if kept.soft_labels is not None:
        soft = np.zeros((len(kept), len(class_names)), np.float32)
        for old, new in enumerate(new_index):
            if new >= 0:
                soft[:, new] = kept.soft_labels[:, old]
        soft /= np.maximum(soft.sum(1, keepdims=True), 1e-12)
    out = FaceDataset(kept.images, new_index[kept.labels].astype(np.int64), list(class_names), kept.usage,
                      kept.groups, kept.sources, soft, kept.name, dict(kept.meta))
    return out, dropped


def concatenated(first: FaceDataset, second: FaceDataset) -> FaceDataset:
    """The images of both, in `first`'s classes (`second` already relabelled to them) and name.

    `second`'s rows take `first`'s usage (its training split's), and one-hot soft labels where `first` has
    soft labels and `second` none; groups and sources are kept only when both have them."""
    if first.class_names != second.class_names:
        raise ValueError("relabel the second dataset to the first one's classes before concatenating")
    if first.image_size != second.image_size:
        raise ValueError(f"image sizes differ: {first.image_size} and {second.image_size}")

    def both(a, b):
        return None if a is None or b is None else np.concatenate([a, b]).astype(object)

    usage = soft = None
    if first.usage is not None:
        fill = first.usage[0] if len(first) else ""
        usage = np.concatenate([first.usage, np.full(len(second), fill, dtype=first.usage.dtype)])
    if first.soft_labels is not None:
        extra = (second.soft_labels if second.soft_labels is not None
                 else np.eye(second.num_classes, dtype=np.float32)[second.labels])
        soft = np.concatenate([first.soft_labels, extra])

    return FaceDataset(
        images=np.concatenate([first.images, second.images]),
        labels=np.concatenate([first.labels, second.labels]),
        class_names=list(first.class_names),
        usage=usage,
        groups=both(first.groups, second.groups),
        sources=both(first.sources, second.sources),
        soft_labels=soft,
        name=first.name,
        meta=dict(first.meta),
    )
