"""Square gray face crops, the input format of the expression models (FER2013 style, 48×48)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import cv2
import numpy as np

from ..data.images import ImageInput, load_image
from ..errors import ConfigError
from .detector import Box, Detection, Detector, create_detector


def _crop(
    gray: np.ndarray, box: Sequence[float], size: int, margin: float, eyes: np.ndarray | None
) -> np.ndarray:
    """Square of side max(w, h)·(1 + margin) around the box centre, rotated so the eyes are level if given."""
    x1, y1, x2, y2 = (float(v) for v in box)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    side = max(1, round(max(x2 - x1, y2 - y1) * (1.0 + margin)))
    angle = 0.0
    if eyes is not None:
        (lx, ly), (rx, ry) = eyes
        angle = math.degrees(math.atan2(ry - ly, rx - lx))
    # Rotate about the face centre, then shift the square's corner (whole pixels) to the origin,
    # so that an upright crop is an exact copy; replicate edge pixels where the square leaves the picture.
    matrix = cv2.getRotationMatrix2D((cx, cy), angle, 1.0)
    matrix[:, 2] -= (round(cx - side / 2), round(cy - side / 2))
    square = cv2.warpAffine(gray, matrix, (side, side), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REPLICATE)
    if side == size:
        return square
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(square, (size, size), interpolation=interpolation)


def _box_and_eyes(
    face: Detection | Box, landmarks: np.ndarray | None, align: bool
) -> tuple[Box, np.ndarray | None]:
    box = face.box if isinstance(face, Detection) else tuple(face)
    if len(box) != 4:
        raise ConfigError(f"a face box needs 4 numbers (x1, y1, x2, y2), got {box!r}")
    if not align:
        return box, None
    if landmarks is None and isinstance(face, Detection):
        landmarks = face.landmarks
    if landmarks is None:
        raise ConfigError("align=True needs eye landmarks; this face has none "
                          "(the 'haar' detector gives none)")
    return box, np.asarray(landmarks, dtype=np.float64).reshape(-1, 2)[:2]


def _check(size: int, margin: float) -> None:
    if size < 1 or margin <= -1.0:
        raise ConfigError(f"crop size must be >= 1 and margin > -1, got size={size}, margin={margin}")


def crop_face(
    image: ImageInput,
    detection_or_box: Detection | Box,
    size: int = 48,
    margin: float = 0.2,
    align: bool = False,
    landmarks: np.ndarray | None = None,
) -> np.ndarray:
    """One face as a size×size uint8 gray image.

    The crop is the square of side max(width, height) × (1 + margin) centred on the box; where it
    leaves the picture, edge pixels are repeated. With `align`, the crop is rotated about the face
    centre so the eyes (the first two of `landmarks`, or of the detection's) are level.
    """
    _check(size, margin)
    box, eyes = _box_and_eyes(detection_or_box, landmarks, align)
    return _crop(load_image(image, mode="gray"), box, size, margin, eyes)


def crop_faces(
    image: ImageInput, detections: Sequence[Detection | Box],
    size: int = 48, margin: float = 0.2, align: bool = False
) -> np.ndarray:
    """`crop_face` for each detection of one image: N×size×size uint8 (0×size×size if none)."""
    _check(size, margin)
    gray = load_image(image, mode="gray")
    crops = []
    for face in detections:
        box, eyes = _box_and_eyes(face, None, align)
        crops.append(_crop(gray, box, size, margin, eyes))
    return np.stack(crops) if crops else np.zeros((0, size, size), dtype=np.uint8)


def detect_and_crop(
    images: Iterable[ImageInput],
    detector: Detector | str = "mtcnn",
    size: int = 48,
    margin: float = 0.2,
    align: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Crop the largest face of each image: (N×size×size uint8 crops, N bool `found`).

    Where no face is found the crop is the image's centre square resized to size×size and
    `found` is False, so every image yields one crop. The same preprocessing serves training on
    datasets of full photos and inference, so both see faces framed alike.
    """
    _check(size, margin)
    if isinstance(detector, str):
        detector = create_detector(detector)
    crops, found = [], []
    for image in images:
        rgb = load_image(image, mode="rgb")
        gray = load_image(rgb, mode="gray")
        faces = detector.detect(rgb)
        if faces:
            box, eyes = _box_and_eyes(max(faces, key=lambda d: d.area), None, align)
            crops.append(_crop(gray, box, size, margin, eyes))
        else:
            h, w = gray.shape
            side = min(h, w)
            x0, y0 = (w - side) / 2, (h - side) / 2
            crops.append(_crop(gray, (x0, y0, x0 + side, y0 + side), size, 0.0, None))
        found.append(bool(faces))
    return ((np.stack(crops) if crops else np.zeros((0, size, size), dtype=np.uint8)),
            np.array(found, dtype=bool))
