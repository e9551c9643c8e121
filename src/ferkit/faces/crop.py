"""Square gray face crops, the input of the expression models, framed by `ferkit.faces.framing`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from ..data.images import ImageInput, load_image, rgb_to_gray
from ..errors import ConfigError
from . import DEFAULT_DETECTOR
from .detector import Box, Detection, Detector, create_detector
from .framing import Framing, as_framing, source_rect, warp_square


def _box_and_landmarks(face: Detection | Box, landmarks: np.ndarray | None) -> tuple[Box, np.ndarray | None]:
    box = face.box if isinstance(face, Detection) else tuple(face)
    if len(box) != 4:
        raise ConfigError(f"a face box needs 4 numbers (x1, y1, x2, y2), got {box!r}")
    if landmarks is None and isinstance(face, Detection):
        landmarks = face.landmarks
    return box, landmarks


def _check(size: int) -> None:
    if size < 1:
        raise ConfigError(f"crop size must be >= 1, got size={size}")


def crop_face(
    image: ImageInput,
    detection_or_box: Detection | Box,
    size: int = 48,
    framing: Framing | str | None = None,
    *,
    margin: float | None = None,
    align: bool | None = None,
    landmarks: np.ndarray | None = None,
) -> np.ndarray:
    """One face as a size×size uint8 gray image, framed by `framing` (default: FER2013's framing).

    `margin=m` alone is short for the box framing with margin m: the square of side max(w, h)·(1 + m)
    about the box centre. `align` levels the eyes. Where the crop leaves the picture, edge pixels repeat.
    """
    box, points = _box_and_landmarks(detection_or_box, landmarks)
    return crop_faces(image, [Detection(box, 1.0, points)], size, framing, margin=margin, align=align)[0]


def crop_faces(
    image: ImageInput, detections: Sequence[Detection | Box], size: int = 48,
    framing: Framing | str | None = None, *, margin: float | None = None, align: bool | None = None,
) -> np.ndarray:
    """`crop_face` for each detection of one image: N×size×size uint8 (0×size×size if none)."""
    _check(size)
    frame = as_framing(framing, margin, align)
    matrices = [frame.matrix(*_box_and_landmarks(face, None), size) for face in detections]
    gray = _gray_where_read(image, matrices, size)
    crops = [warp_square(gray, matrix, size) for matrix in matrices]
    return np.stack(crops) if crops else np.zeros((0, size, size), dtype=np.uint8)


def _gray_where_read(image: ImageInput, matrices: list[np.ndarray], size: int) -> np.ndarray:
    """`image` in gray wherever the crops of `matrices` read it (elsewhere 0).

    An RGB frame is converted only inside the crops' source rectangles: the crops come out the same as
    from the whole frame in gray, and a video frame's faces are a small part of it (in NumPy, converting
    a whole 640×480 frame took longer than cutting its faces).
    """
    rgb = isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3 and image.size > 0
    if not rgb or image.dtype != np.uint8 or not matrices:
        return load_image(image, mode="gray")
    gray = np.zeros(image.shape[:2], np.uint8)
    for matrix in matrices:
        rows, cols = source_rect(matrix, size, image.shape)
        gray[rows, cols] = rgb_to_gray(image[rows, cols])
    return gray


def detect_and_crop(
    images: Iterable[ImageInput],
    detector: Detector | str = DEFAULT_DETECTOR,
    size: int = 48,
    framing: Framing | str | None = None,
    *,
    margin: float | None = None,
    align: bool | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Crop the largest face of each image: (N×size×size uint8 crops, N bool `found`).

    Where no face is found the crop is the image's centre square resized to size×size and
    `found` is False, so every image yields one crop. The same preprocessing serves training on
    datasets of full photos and inference, so both see faces framed alike.
    """
    _check(size)
    frame = as_framing(framing, margin, align)
    if isinstance(detector, str):
        detector = create_detector(detector)
    crops, found = [], []
    for image in images:
        rgb = load_image(image, mode="rgb")
        faces = detector.detect(rgb)
        if faces:
            crops.append(crop_faces(rgb, [max(faces, key=lambda d: d.area)], size, frame)[0])
        else:
            h, w = rgb.shape[:2]
            side = min(h, w)
            x0, y0 = (w - side) / 2, (h - side) / 2
            crops.append(crop_faces(rgb, [(x0, y0, x0 + side, y0 + side)], size, Framing("box", 0.0))[0])
        found.append(bool(faces))
    return ((np.stack(crops) if crops else np.zeros((0, size, size), dtype=np.uint8)),
            np.array(found, dtype=bool))
