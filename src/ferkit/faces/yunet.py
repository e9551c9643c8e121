"""YuNet (Wu, Peng and Yu, 2023), a fast face detector run by OpenCV's own `cv2.FaceDetectorYN`.

The model file (233 KB, MIT licence, from the OpenCV model zoo) ships in `ferkit/pretrained/yunet/` with
its licence. YuNet gives a box and five landmarks per face, like MTCNN, so the landmark framing works
unchanged. Large pictures are scaled down first (YuNet is trained on faces of about 10 to 300 pixels).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import cv2
import numpy as np

from ..data.images import ImageInput, load_image
from ..errors import ConfigError, ModelFileError
from .detector import Detection, Detector

MODEL_FILE = "face_detection_yunet_2023mar.onnx"


def model_path() -> Path:
    path = Path(str(resources.files("ferkit") / "pretrained" / "yunet" / MODEL_FILE))
    if not path.is_file():
        raise ModelFileError(f"{path}: the bundled YuNet model is missing from this installation")
    return path


class YuNetDetector(Detector):
    """score_threshold: the least face score kept; max_side: larger pictures are scaled down to this;
    min_face_size: faces whose box is narrower or shorter than this many pixels are dropped."""

    name = "yunet"

    def __init__(self, score_threshold: float = 0.7, nms_threshold: float = 0.3, max_side: int = 960,
                 min_face_size: float = 0) -> None:
        if not 0.0 < score_threshold < 1.0 or not 0.0 < nms_threshold < 1.0 or max_side < 32:
            raise ConfigError(f"yunet: thresholds must be in (0, 1) and max_side ≥ 32, got "
                              f"{score_threshold}, {nms_threshold}, {max_side}")
        if min_face_size < 0:
            raise ConfigError(f"yunet: min_face_size must be ≥ 0, got {min_face_size}")
        if not hasattr(cv2, "FaceDetectorYN"):
            raise ConfigError(f"OpenCV {cv2.__version__} has no FaceDetectorYN; use the mtcnn detector")
        self.max_side, self.min_face_size = max_side, min_face_size
        self._net = cv2.FaceDetectorYN.create(str(model_path()), "", (320, 320), score_threshold,
                                              nms_threshold, 5000)

    def detect(self, image: ImageInput) -> list[Detection]:
        rgb = load_image(image, mode="rgb")
        h, w = rgb.shape[:2]
        scale = min(1.0, self.max_side / max(h, w))
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        small = rgb if scale == 1.0 else cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        self._net.setInputSize((small.shape[1], small.shape[0]))
        _, rows = self._net.detect(cv2.cvtColor(small, cv2.COLOR_RGB2BGR))
        unscale = np.r_[np.full(14, scale), 1.0]  # coordinates back to the full picture; the score as it is
        faces = [_detection(row / unscale, w, h) for row in (rows if rows is not None else [])]
        faces = [f for f in faces if min(f.box[2] - f.box[0], f.box[3] - f.box[1]) >= self.min_face_size]
        return sorted(faces, key=lambda d: -d.score)


def _detection(row: np.ndarray, width: int, height: int) -> Detection:
    """One YuNet row (x, y, w, h, 5 landmarks, score), the box clipped to the picture.

    YuNet lists the person's right eye and mouth corner first: the picture's left, as ferkit does.
    """
    x, y, bw, bh = (float(v) for v in row[:4])
    box = (max(0.0, x), max(0.0, y), min(float(width), x + bw), min(float(height), y + bh))
    return Detection(box, float(row[14]), row[4:14].reshape(5, 2).astype(np.float64))
