"""The one definition of the face crop the classifier sees: landmarks placed where FER2013 has them.

FER2013 faces fill their 48×48 frame from brows to chin. A detector box with a margin frames a real
face differently (hair, neck, and a scale that depends on the detector), so ferkit places the five
landmarks (eyes, nose, mouth corners) where they sit on average in a FER2013 frame. The template was
measured by `benchmarks/face_framing.py --fer-images 1000` (MTCNN found 852 faces in 1,000 upscaled
FER2013 Training frames; medians).

- "landmarks" (default): the square that best maps the face's five landmarks onto the template by
  scale and shift (least squares); with `align`, by rotation too, so the eyes are level. A face with
  no landmarks (Haar, a labelled box) falls back to the box framing. `zoom` scales the template about
  its centre (> 1 shows the face larger, a tighter crop); benchmarks/face_framing.py measures it.
- Detectors place landmarks differently. YuNet, the default detector, puts the mouth corners higher than
  MTCNN, whose landmarks measured the template (eye-to-mouth 0.36 of a FER2013 frame against 0.40), so
  YuNet faces come out about 7 % larger than FER2013's. YuNet's own template was measured and tried: the
  model did no better with it on re-framed FER2013 PublicTest and worse on expw-dev (BENCHMARKS.md, *Face
  framing*), so one template serves every detector.
- "box": the square of side max(w, h) · (1 + margin) around the box centre. The default margin, −0.07,
  is the one that gives a squared MTCNN box FER2013's frame (same measurement); ferkit used 0.2 before.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import ConfigError
from .detector import Box

# Landmarks in a FER2013 frame, as fractions of its side (x right, y down): left eye, right eye, nose,
# mouth left, mouth right ("left" = the left of the picture). Measured: see the module docstring.
FER2013_TEMPLATE = np.array([[0.315, 0.386], [0.692, 0.386], [0.500, 0.602], [0.346, 0.782], [0.660, 0.779]])
# Margin that makes a squared MTCNN box frame a face as FER2013 does (same measurement).
FER2013_BOX_MARGIN = -0.07
METHODS = ("landmarks", "box")


@dataclass(frozen=True)
class Framing:
    """How a face becomes the classifier's square crop (see the module docstring)."""

    method: str = "landmarks"
    margin: float = FER2013_BOX_MARGIN
    align: bool = False
    zoom: float = 1.0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"unknown framing {self.method!r}; use {' or '.join(METHODS)}")
        if self.margin <= -1.0:
            raise ConfigError(f"framing margin must be > -1, got {self.margin}")
        if not self.zoom > 0:
            raise ConfigError(f"framing zoom must be > 0, got {self.zoom}")

    def matrix(self, box: Box, landmarks: np.ndarray | None, size: int) -> np.ndarray:
        """The 2×3 affine map from image pixels to the size×size crop."""
        if self.method == "landmarks" and landmarks is not None:
            points = np.asarray(landmarks, np.float64).reshape(5, 2)
            return landmark_matrix(points, size, self.align, self.zoom)
        eyes = None
        if self.align:
            if landmarks is None:
                raise ConfigError("align=True needs eye landmarks; this face has none "
                                  "(the 'haar' detector gives none)")
            eyes = np.asarray(landmarks, np.float64).reshape(-1, 2)[:2]
        return box_matrix(box, size, self.margin, eyes)

    def crop(self, gray: np.ndarray, box: Box, landmarks: np.ndarray | None, size: int) -> np.ndarray:
        """The face as a size×size uint8 crop of the gray image; edge pixels repeat outside the picture."""
        return warp_square(gray, self.matrix(box, landmarks, size), size)


def as_framing(framing: Framing | str | None = None, margin: float | None = None,
               align: bool | None = None) -> Framing:
    """A Framing from the shorthand callers use: a margin alone means the box framing with that margin."""
    if isinstance(framing, Framing):
        if margin is not None or align is not None:
            raise ConfigError("give either a Framing or margin/align, not both")
        return framing
    method = framing or ("box" if margin is not None else "landmarks")
    return Framing(method, FER2013_BOX_MARGIN if margin is None else margin, bool(align))


def warp_square(gray: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """Cut the square that `matrix` maps onto size×size: at the image's own scale, then resized.

    Warping at the image's scale first and resizing after (INTER_AREA when shrinking) keeps fine detail
    from aliasing; an upright box crop at scale 1 is an exact copy of the pixels.
    """
    native = max(1, round(size / math.hypot(matrix[0, 0], matrix[1, 0])))
    square = cv2.warpAffine(gray, matrix * (native / size), (native, native), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REPLICATE)
    if native == size:
        return square
    interpolation = cv2.INTER_AREA if native > size else cv2.INTER_LINEAR
    return cv2.resize(square, (size, size), interpolation=interpolation)


def source_rect(matrix: np.ndarray, size: int, shape: tuple[int, ...]) -> tuple[slice, slice]:
    """The rows and columns of an image of `shape` that `warp_square(image, matrix, size)` reads.

    The square's corners mapped back into the image, widened by 2 px for the bilinear neighbours and
    clipped to the image, keeping at least the edge row and column that a crop beyond the picture
    repeats.
    """
    inverse = cv2.invertAffineTransform(matrix)
    corners = np.array([[0, 0], [size, 0], [0, size], [size, size]], np.float64)
    points = corners @ inverse[:, :2].T + inverse[:, 2]
    (x0, y0), (x1, y1) = np.floor(points.min(0)) - 2, np.ceil(points.max(0)) + 3
    height, width = shape[:2]
    rows = slice(int(np.clip(y0, 0, height - 1)), int(np.clip(y1, 1, height)))
    cols = slice(int(np.clip(x0, 0, width - 1)), int(np.clip(x1, 1, width)))
    return rows, cols


def landmark_matrix(points: np.ndarray, size: int, align: bool, zoom: float = 1.0,
                    template: np.ndarray = FER2013_TEMPLATE) -> np.ndarray:
    """Least-squares similarity (no rotation unless `align`) from `points` to `template` × size.

    `zoom` scales the template about its centre first.
    """
    centre = template.mean(0)
    target = (centre + (template - centre) * zoom) * size
    p0, q0 = points.mean(0), target.mean(0)
    p, q = points - p0, target - q0
    norm = (p ** 2).sum()
    if norm < 1e-9:
        raise ConfigError("face landmarks coincide; cannot frame this face")
    if align:
        a = (p * q).sum() / norm
        b = (p[:, 0] * q[:, 1] - p[:, 1] * q[:, 0]).sum() / norm
    else:
        a, b = (p * q).sum() / norm, 0.0
    linear = np.array([[a, -b], [b, a]])
    return np.hstack([linear, (q0 - linear @ p0)[:, None]])


def box_matrix(box: Box, size: int, margin: float, eyes: np.ndarray | None = None) -> np.ndarray:
    """The square of side max(w, h) · (1 + margin) about the box centre, rotated to level `eyes` if given.

    The square's corner sits on whole pixels, so that an upright crop at scale 1 copies pixels exactly.
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    side = max(1, round(max(x2 - x1, y2 - y1) * (1.0 + margin)))
    angle = 0.0
    if eyes is not None:
        (lx, ly), (rx, ry) = eyes
        angle = math.degrees(math.atan2(ry - ly, rx - lx))
    matrix = cv2.getRotationMatrix2D((cx, cy), angle, 1.0)
    matrix[:, 2] -= (round(cx - side / 2), round(cy - side / 2))
    return matrix * (size / side)
