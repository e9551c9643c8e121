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
