"""YuNet (Wu, Peng and Yu, 2023), a fast face detector, run by ONNX Runtime or OpenCV's `cv2.FaceDetectorYN`.

The model file (233 KB, MIT licence, from the OpenCV model zoo) ships in `ferkit/pretrained/yunet/` with
its licence. YuNet gives a box and five landmarks per face, like MTCNN, so the landmark framing applies
(its points sit a little differently from MTCNN's: see `framing.py`). Large pictures are scaled down
first (YuNet is trained on faces of about 10 to 300 pixels).

ONNX Runtime runs the network faster than OpenCV's DNN module on a 2-core CPU (1.5× per ExpW photo;
BENCHMARKS.md, *Face detection*), so it is the default engine. `_decode` turns the network's outputs into
faces as `cv2.FaceDetectorYN` does (OpenCV's objdetect/src/face_detect.cpp), and a test holds the two
engines to the same faces.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import cv2
import numpy as np

from ..data.images import ImageInput, load_image
from ..errors import ConfigError, ModelFileError
from ..onnx_session import cpu_session
from .detector import Detection, Detector

MODEL_FILE = "face_detection_yunet_2023mar.onnx"


def model_path() -> Path:
    path = Path(str(resources.files("ferkit") / "pretrained" / "yunet" / MODEL_FILE))
    if not path.is_file():
        raise ModelFileError(f"{path}: the bundled YuNet model is missing from this installation")
    return path


ENGINES = ("onnxruntime", "opencv")
STRIDES = (8, 16, 32)  # the network's three output scales; its input sides must be multiples of 32


class YuNetDetector(Detector):
    """score_threshold: the least face score kept; max_side: larger pictures are scaled down to this;
    min_face_size: faces whose box is narrower or shorter than this many pixels are dropped;
    engine: "onnxruntime" (faster) or "opencv" (`cv2.FaceDetectorYN`)."""

    name = "yunet"

    def __init__(self, score_threshold: float = 0.7, nms_threshold: float = 0.3, max_side: int = 960,
                 min_face_size: float = 0, engine: str = "onnxruntime") -> None:
        if not 0.0 < score_threshold < 1.0 or not 0.0 < nms_threshold < 1.0 or max_side < 32:
            raise ConfigError(f"yunet: thresholds must be in (0, 1) and max_side ≥ 32, got "
                              f"{score_threshold}, {nms_threshold}, {max_side}")
        if min_face_size < 0:
            raise ConfigError(f"yunet: min_face_size must be ≥ 0, got {min_face_size}")
        if engine not in ENGINES:
            raise ConfigError(f"yunet: engine must be one of {', '.join(ENGINES)}, not {engine!r}")
        self.max_side, self.min_face_size = max_side, min_face_size
        self.score_threshold, self.nms_threshold, self.engine = score_threshold, nms_threshold, engine
        self._net = self._session = None
        if engine == "opencv":
            if not hasattr(cv2, "FaceDetectorYN"):
                raise ConfigError(f"OpenCV {cv2.__version__} has no FaceDetectorYN; use engine onnxruntime")
            self._net = cv2.FaceDetectorYN.create(str(model_path()), "", (320, 320), score_threshold,
                                                  nms_threshold, 5000)
        else:
            self._session = _onnx_session(model_path())
            self._outputs = [o.name for o in self._session.get_outputs()]

    def detect(self, image: ImageInput) -> list[Detection]:
        rgb = load_image(image, mode="rgb")
        h, w = rgb.shape[:2]
        scale = min(1.0, self.max_side / max(h, w))
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        small = rgb if scale == 1.0 else cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        rows = self._rows_opencv(small) if self._net is not None else self._rows_onnx(small)
        unscale = np.r_[np.full(14, scale), 1.0]  # coordinates back to the full picture; the score as it is
        faces = [_detection(row / unscale, w, h) for row in (rows if rows is not None else [])]
        faces = [f for f in faces if min(f.box[2] - f.box[0], f.box[3] - f.box[1]) >= self.min_face_size]
        return sorted(faces, key=lambda d: -d.score)

    def _rows_opencv(self, rgb: np.ndarray) -> np.ndarray | None:
        self._net.setInputSize((rgb.shape[1], rgb.shape[0]))
        return self._net.detect(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1]

    def _rows_onnx(self, rgb: np.ndarray) -> np.ndarray:
        """YuNet rows (x, y, w, h, 5 landmarks, score) as `cv2.FaceDetectorYN.detect` gives them."""
        h, w = rgb.shape[:2]
        padded = cv2.copyMakeBorder(rgb, 0, -h % 32, 0, -w % 32, cv2.BORDER_CONSTANT, value=0)
        blob = cv2.dnn.blobFromImage(padded, swapRB=True)  # the network takes BGR, as OpenCV feeds it
        outputs = dict(zip(self._outputs, self._session.run(None, {"input": blob})))
        rows = _decode(outputs, padded.shape[1], self.score_threshold)
        keep = cv2.dnn.NMSBoxes(rows[:, :4].tolist(), rows[:, 14].tolist(), self.score_threshold,
                                self.nms_threshold, top_k=5000)
        return rows[np.asarray(keep, dtype=np.int64).reshape(-1)]


def _onnx_session(path: Path):
    """An ONNX Runtime session of YuNet with its input's height and width made free (the file fixes 640×640;
    the network itself is fully convolutional)."""
    import onnx

    proto = onnx.load(str(path))
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_param, dims[3].dim_param = "height", "width"
    return cpu_session(proto.SerializeToString())


def _decode(outputs: dict[str, np.ndarray], width: int, min_score: float) -> np.ndarray:
    """The rows (x, y, w, h, 5 landmarks, score) of the anchors scoring at least `min_score`, before NMS.

    Per stride, a grid of anchors in row-major order over the padded input, `width` pixels wide; boxes and
    landmarks are offsets in units of the stride; the score is the geometric mean of the class and
    objectness scores."""
    parts = []
    for stride in STRIDES:
        score = np.sqrt(np.clip(outputs[f"cls_{stride}"][0, :, 0], 0, 1) *
                        np.clip(outputs[f"obj_{stride}"][0, :, 0], 0, 1))
        kept = np.flatnonzero(score >= min_score)
        gy, gx = np.divmod(kept.astype(np.float32), width // stride)
        bbox, kps = outputs[f"bbox_{stride}"][0, kept], outputs[f"kps_{stride}"][0, kept]
        cx, cy = (gx + bbox[:, 0]) * stride, (gy + bbox[:, 1]) * stride
        bw, bh = np.exp(bbox[:, 2]) * stride, np.exp(bbox[:, 3]) * stride
        marks = (kps.reshape(-1, 5, 2) + np.stack([gx, gy], 1)[:, None]) * stride
        parts.append(np.column_stack([cx - bw / 2, cy - bh / 2, bw, bh, marks.reshape(-1, 10), score[kept]]))
    return np.concatenate(parts).astype(np.float32)


def _detection(row: np.ndarray, width: int, height: int) -> Detection:
    """One YuNet row (x, y, w, h, 5 landmarks, score), the box clipped to the picture.

    YuNet lists the person's right eye and mouth corner first: the picture's left, as ferkit does.
    """
    x, y, bw, bh = (float(v) for v in row[:4])
    box = (max(0.0, x), max(0.0, y), min(float(width), x + bw), min(float(height), y + bh))
    return Detection(box, float(row[14]), row[4:14].reshape(5, 2).astype(np.float64))
