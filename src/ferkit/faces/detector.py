"""The face detector interface, the registry of detectors, and box matching."""

from __future__ import annotations

import importlib
import inspect
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from ..data.images import ImageInput
from ..errors import ConfigError
from . import DEFAULT_DETECTOR

Box = tuple[float, float, float, float]


@dataclass
class Detection:
    """One face: `box` is (x1, y1, x2, y2) in pixels of the input image, clipped to it.

    `landmarks` is 5×2 (x, y) in pixels — left eye, right eye, nose, mouth left, mouth right, where
    "left" means the left side of the picture (the person's right) — or None if the detector
    gives none.
    """

    box: Box
    score: float
    landmarks: np.ndarray | None = None

    @property
    def area(self) -> float:
        x1, y1, x2, y2 = self.box
        return max(0.0, x2 - x1) * max(0.0, y2 - y1)

    def square(self, margin: float = 0.0) -> Detection:
        """The same face with its box made square: side max(w, h) · (1 + margin), same centre.

        margin 0 gives the shape of square face labels (ExpW, many crop datasets); the default crop
        margin (0.2) gives the region `crop_face` classifies.
        """
        x1, y1, x2, y2 = self.box
        cx, cy, half = (x1 + x2) / 2, (y1 + y2) / 2, max(x2 - x1, y2 - y1) * (1 + margin) / 2
        return Detection((cx - half, cy - half, cx + half, cy + half), self.score, self.landmarks)


class Detector(ABC):
    """A face detector. Subclasses set `name` and implement `detect`."""

    name: str

    @abstractmethod
    def detect(self, image: ImageInput) -> list[Detection]:
        """Faces in `image` (anything `load_image` accepts), highest score first; [] if none."""


_DETECTORS = {"mtcnn": ("ferkit.faces.mtcnn", "MTCNNDetector"), "haar": ("ferkit.faces.haar", "HaarDetector"),
              "yunet": ("ferkit.faces.yunet", "YuNetDetector")}


def list_detectors() -> list[str]:
    return list(_DETECTORS)


def create_detector(name: str = DEFAULT_DETECTOR, **kwargs) -> Detector:
    """Build the detector called `name` with its keyword options (e.g. `min_face_size=40`)."""
    key = name.lower().strip()
    if key not in _DETECTORS:
        raise ConfigError(f"unknown face detector {name!r}; choose one of: {', '.join(_DETECTORS)}")
    module, cls_name = _DETECTORS[key]
    cls = getattr(importlib.import_module(module), cls_name)
    try:
        inspect.signature(cls).bind(**kwargs)
    except TypeError as exc:
        options = ", ".join(inspect.signature(cls).parameters)
        raise ConfigError(f"face detector {key!r}: {exc}; its options are: {options}") from None
    return cls(**kwargs)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise intersection-over-union of boxes `a` (N×4) and `b` (M×4), as an N×M array."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    wh = np.clip(np.minimum(a[:, None, 2:], b[None, :, 2:]) - np.maximum(a[:, None, :2], b[None, :, :2]),
                 0, None)
    inter = wh[..., 0] * wh[..., 1]
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def match_boxes(truth_boxes: np.ndarray, boxes: np.ndarray, min_iou: float = 0.4) -> np.ndarray:
    """For each of `truth_boxes` (N×4), the index of the box (M×4) that matches it, or -1.

    One-to-one greedy matching, best IoU first, so one box cannot count for two faces.
    """
    match = np.full(len(truth_boxes), -1)
    if len(truth_boxes) == 0 or len(boxes) == 0:
        return match
    iou = box_iou(np.asarray(truth_boxes), np.asarray(boxes))
    while True:
        t, d = np.unravel_index(np.argmax(iou), iou.shape)
        if iou[t, d] < min_iou:
            return match
        match[t] = d
        iou[t, :] = -1.0
        iou[:, d] = -1.0


def match_faces(truth_boxes: np.ndarray, detections: list[Detection], min_iou: float = 0.4) -> np.ndarray:
    """Which of `truth_boxes` (N×4) a detection finds: bool per box (one-to-one, as `match_boxes`).

    Unmatched detections are not penalised (photos may hold unlabelled faces).
    """
    boxes = np.array([d.box for d in detections]).reshape(-1, 4)
    return match_boxes(truth_boxes, boxes, min_iou) >= 0
