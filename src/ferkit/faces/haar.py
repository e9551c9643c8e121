"""OpenCV's Viola-Jones Haar cascade face detector: frontal faces only, square boxes, no landmarks.

OpenCV 5 moved `CascadeClassifier` and its cascade files to opencv-contrib; this detector needs
an OpenCV that still has them (opencv-python-headless < 5, or a contrib build).
"""

from __future__ import annotations

import functools
from pathlib import Path

import cv2
import numpy as np

from ..data.images import ImageInput, load_image
from ..errors import ConfigError, ModelFileError
from .detector import Detection, Detector

CASCADE = "haarcascade_frontalface_default.xml"


@functools.cache
def _cascade(filename: str) -> cv2.CascadeClassifier:
    data = getattr(cv2, "data", None)
    if not hasattr(cv2, "CascadeClassifier") or not getattr(data, "haarcascades", None):
        raise ConfigError(
            f"the 'haar' face detector needs OpenCV's CascadeClassifier, which OpenCV {cv2.__version__} "
            "lacks (OpenCV 5 moved it to opencv-contrib): install opencv-python-headless<5, or use 'mtcnn'"
        )
    path = Path(data.haarcascades) / filename
    cascade = cv2.CascadeClassifier(str(path))
    if cascade.empty():
        raise ModelFileError(f"{path}: Haar cascade missing or unreadable")
    return cascade


class HaarDetector(Detector):
    """Haar cascade detector. `score` is the cascade's level weight (higher is more face-like).

    scale_factor: step between the scanned window sizes (> 1).
    min_neighbors: overlapping raw hits needed to keep a face; higher gives fewer false alarms.
    min_face_size: smallest face side in pixels.
    equalize: equalise the gray histogram first (finds 4 more of the 90 labelled ExpW faces).
    """

    name = "haar"

    def __init__(
        self, scale_factor: float = 1.1, min_neighbors: int = 5,
        min_face_size: int = 20, equalize: bool = True
    ) -> None:
        if not scale_factor > 1.0:
            raise ConfigError(f"scale_factor must be greater than 1, got {scale_factor}")
        if min_neighbors < 0 or min_face_size < 1:
            raise ConfigError("min_neighbors must be >= 0 and min_face_size >= 1, "
                              f"got {min_neighbors}, {min_face_size}")
        self.scale_factor = float(scale_factor)
        self.min_neighbors = int(min_neighbors)
        self.min_face_size = int(min_face_size)
        self.equalize = bool(equalize)
        self._cascade = _cascade(CASCADE)

    def detect(self, image: ImageInput) -> list[Detection]:
        gray = cv2.cvtColor(load_image(image, mode="rgb"), cv2.COLOR_RGB2GRAY)
        if self.equalize:
            gray = cv2.equalizeHist(gray)
        size = (self.min_face_size, self.min_face_size)
        rects, _, weights = self._cascade.detectMultiScale3(
            gray, self.scale_factor, self.min_neighbors, minSize=size, outputRejectLevels=True
        )
        faces = [
            Detection(box=(float(x), float(y), float(x + w), float(y + h)), score=float(s))
            for (x, y, w, h), s in zip(np.asarray(rects).reshape(-1, 4), np.asarray(weights).reshape(-1))
        ]
        return sorted(faces, key=lambda d: -d.score)
