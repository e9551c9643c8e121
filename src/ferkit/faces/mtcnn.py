"""MTCNN face detector (Zhang et al. 2016) in PyTorch, with the weights of the `mtcnn` PyPI package.

Three cascaded nets: P-Net scans an image pyramid for 12×12 face windows, R-Net (24×24) and
O-Net (48×48, plus five landmarks) re-score and refine the surviving boxes. The stage logic follows
the original implementation; the input normalisation ((x − 127.5) / 128, RGB, not transposed)
and the weights follow `mtcnn` 1.0.0, whose Keras layouts are converted here once per process
without TensorFlow.
"""

from __future__ import annotations

import functools
import importlib.util
import math
from pathlib import Path

import cv2
import joblib
import numpy as np
import torch
from torch import nn

from ..data.images import ImageInput, load_image
from ..errors import ConfigError, ModelFileError
from .detector import Detection, Detector


def _conv(k: int, c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, k), nn.PReLU(c_out)]


def _pool(k: int) -> nn.MaxPool2d:
    # ceil_mode reproduces Keras "same" pooling for the even sizes that occur here.
    return nn.MaxPool2d(k, 2, ceil_mode=True)


class _WHCFlatten(nn.Module):
    """Flatten NCHW as Keras' Permute((2, 1, 3)) + Flatten did on NHWC: W, H, C order."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 3, 2, 1).flatten(1)


class _PNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(*_conv(3, 3, 10), _pool(2), *_conv(3, 10, 16), *_conv(3, 16, 32))
        self.box = nn.Conv2d(32, 4, 1)
        self.cls = nn.Conv2d(32, 2, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.body(x)
        return self.box(x), self.cls(x).softmax(1)[:, 1]


class _RNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            *_conv(3, 3, 28), _pool(3), *_conv(3, 28, 48), nn.MaxPool2d(3, 2), *_conv(2, 48, 64),
            _WHCFlatten(), nn.Linear(576, 128), nn.PReLU(128),
        )
        self.box = nn.Linear(128, 4)
        self.cls = nn.Linear(128, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.body(x)
        return self.box(x), self.cls(x).softmax(1)[:, 1]


class _ONet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            *_conv(3, 3, 32), _pool(3), *_conv(3, 32, 64), nn.MaxPool2d(3, 2), *_conv(3, 64, 64), _pool(2),
            *_conv(2, 64, 128), _WHCFlatten(), nn.Linear(1152, 256), nn.PReLU(256),
        )
        self.box = nn.Linear(256, 4)
        self.points = nn.Linear(256, 10)
        self.cls = nn.Linear(256, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.body(x)
        return self.box(x), self.points(x), self.cls(x).softmax(1)[:, 1]


def _weights_dir() -> Path:
    # find_spec locates the package without importing it (its __init__ imports TensorFlow).
    spec = importlib.util.find_spec("mtcnn")
    if spec is None or not spec.submodule_search_locations:
        raise ModelFileError("MTCNN weights not found: install the 'mtcnn==1.0.0' package "
                             "(pip install mtcnn==1.0.0)")
    return Path(next(iter(spec.submodule_search_locations))) / "assets" / "weights"


def _load_keras_weights(net: nn.Module, path: Path) -> nn.Module:
    """Copy a list of Keras arrays (in layer order) into `net`'s parameters (in module order)."""
    try:
        arrays = joblib.load(path)
    except Exception as exc:  # missing, truncated or not a joblib dump: unpickling can raise anything
        raise ModelFileError(f"{path}: cannot read MTCNN weights ({exc})") from exc
    params = list(net.parameters())
    if len(arrays) != len(params):
        raise ModelFileError(f"{path}: expected {len(params)} weight arrays, found {len(arrays)}")
    with torch.no_grad():
        for param, array in zip(params, arrays):
            array = np.asarray(array, dtype=np.float32)
            if array.ndim == 4:  # conv kernel H, W, in, out -> out, in, H, W
                array = array.transpose(3, 2, 0, 1)
            elif array.ndim == 2:  # dense kernel in, out -> out, in
                array = array.T
            array = array.reshape(-1) if param.ndim == 1 else array  # PReLU alphas are stored 1×1×C
            if tuple(array.shape) != tuple(param.shape):
                raise ModelFileError(f"{path}: weight of shape {array.shape} "
                                     f"does not fit {tuple(param.shape)}")
            param.copy_(torch.from_numpy(np.ascontiguousarray(array)))
    return net.eval()


@functools.cache
def _nets(device: str) -> tuple[nn.Module, nn.Module, nn.Module]:
    folder = _weights_dir()
    pnet = _load_keras_weights(_PNet(), folder / "pnet.lz4")
    rnet = _load_keras_weights(_RNet(), folder / "rnet.lz4")
    onet = _load_keras_weights(_ONet(), folder / "onet.lz4")
    return pnet.to(device), rnet.to(device), onet.to(device)


def _run(net: nn.Module, crops: torch.Tensor, device: torch.device, batch: int = 256) -> list[np.ndarray]:
    """Run R- or O-Net over crops in batches (a crowd photo can give thousands) and gather outputs."""
    parts = [net(crops[i : i + batch].to(device)) for i in range(0, len(crops), batch)]
    return [torch.cat(outputs).cpu().numpy() for outputs in zip(*parts)]


def _nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, method: str = "union") -> np.ndarray:
    """Greedy non-maximum suppression: indices kept, best score first.

    'min' divides the overlap by the smaller box (the original's last step). Each kept box is only
    compared with boxes whose x1 lies within reach (a sweep over x1), which matters in crowd photos.
    """
    x1, y1, x2, y2 = boxes.T
    area = (x2 - x1) * (y2 - y1)
    by_x1 = np.argsort(x1, kind="stable")
    x1_sorted, widest = x1[by_x1], float((x2 - x1).max(initial=0.0))
    suppressed = np.zeros(len(boxes), dtype=bool)
    keep = []
    for i in np.argsort(scores, kind="stable")[::-1]:
        if suppressed[i]:
            continue
        keep.append(i)
        lo, hi = np.searchsorted(x1_sorted, [x1[i] - widest, x2[i]])
        j = by_x1[lo:hi]
        w = np.minimum(x2[i], x2[j]) - np.maximum(x1[i], x1[j])
        h = np.minimum(y2[i], y2[j]) - np.maximum(y1[i], y1[j])
        inter = np.maximum(w, 0.0) * np.maximum(h, 0.0)
        denom = np.minimum(area[i], area[j]) if method == "min" else area[i] + area[j] - inter
        suppressed[j[inter / np.maximum(denom, 1e-9) > threshold]] = True
    return np.array(keep, dtype=np.int64)


def _regress(boxes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Shift box corners by offsets given in units of the box size."""
    size = boxes[:, 2:4] - boxes[:, 0:2]
    return boxes + offsets * np.concatenate([size, size], axis=1)


def _square(boxes: np.ndarray) -> np.ndarray:
    """Grow each box to a square of its longer side around its centre."""
    centre = (boxes[:, 0:2] + boxes[:, 2:4]) / 2
    half = (boxes[:, 2:4] - boxes[:, 0:2]).max(axis=1, keepdims=True) / 2
    return np.concatenate([centre - half, centre + half], axis=1)


def _crops(image: np.ndarray, boxes: np.ndarray, size: int) -> torch.Tensor:
    """Cut boxes (rounded to whole pixels) out of `image`, black outside it, resized to size×size."""
    h, w = image.shape[:2]
    out = np.empty((len(boxes), size, size, 3), dtype=np.uint8)
    for k, (x1, y1, x2, y2) in enumerate(np.round(boxes).astype(np.int64)):
        x2, y2 = max(x2, x1 + 1), max(y2, y1 + 1)
        if x1 >= 0 and y1 >= 0 and x2 <= w and y2 <= h:
            patch = image[y1:y2, x1:x2]
        else:
            patch = np.zeros((y2 - y1, x2 - x1, 3), dtype=np.uint8)
            sx1, sy1, sx2, sy2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
            if sx1 < sx2 and sy1 < sy2:
                patch[sy1 - y1 : sy2 - y1, sx1 - x1 : sx2 - x1] = image[sy1:sy2, sx1:sx2]
        out[k] = cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA)
    return _normalise(out)


def _normalise(images: np.ndarray) -> torch.Tensor:
    """N×H×W×3 uint8 RGB -> N×3×H×W float in [-1, 1) as the nets were trained."""
    return (torch.from_numpy(images).permute(0, 3, 1, 2).float() - 127.5) / 128.0


class MTCNNDetector(Detector):
    """MTCNN face detector with five landmarks per face.

    min_face_size: smallest face (pixels) to look for; smaller values cost more time.
    thresholds: face-probability cut-offs for P-Net, R-Net and O-Net. O-Net's 0.9 (the paper used 0.7,
        mtcnn 1.0.0 uses 0.8) drops look-alikes such as the neck ring of the astronaut's suit (0.85)
        and costs 1 of the 90 labelled ExpW faces (benchmarks/detection_recall.py).
    scale_factor: step between image pyramid levels.
    device: torch device to run the nets on.
    """

    name = "mtcnn"

    def __init__(
        self,
        min_face_size: float = 20,
        thresholds: tuple[float, float, float] = (0.6, 0.7, 0.9),
        scale_factor: float = 0.709,
        device: str | torch.device = "cpu",
    ) -> None:
        if not min_face_size > 0:
            raise ConfigError(f"min_face_size must be positive, got {min_face_size}")
        if len(thresholds) != 3 or not all(0.0 <= t < 1.0 for t in thresholds):
            raise ConfigError(f"thresholds must be three probabilities in [0, 1), got {thresholds}")
        if not 0.0 < scale_factor < 1.0:
            raise ConfigError(f"scale_factor must be between 0 and 1, got {scale_factor}")
        self.min_face_size = float(min_face_size)
        self.thresholds = tuple(float(t) for t in thresholds)
        self.scale_factor = float(scale_factor)
        self.device = torch.device(device)
        self._pnet, self._rnet, self._onet = _nets(str(self.device))

    def _scales(self, height: int, width: int) -> list[float]:
        """Pyramid scales mapping a min_face_size face onto P-Net's 12-pixel window, down to 12 pixels."""
        scale, scales = 12.0 / self.min_face_size, []
        while min(height, width) * scale >= 12:
            scales.append(scale)
            scale *= self.scale_factor
        return scales

    def _stage1(self, image: np.ndarray) -> np.ndarray:
        """P-Net proposals over the pyramid, squared: N×4 boxes (x1, y1, x2, y2; x2, y2 exclusive)."""
        height, width = image.shape[:2]
        boxes, scores, offsets = [], [], []
        for scale in self._scales(height, width):
            size = (math.ceil(width * scale), math.ceil(height * scale))
            scaled = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            reg, prob = self._pnet(_normalise(scaled[None]).to(self.device))
            prob, reg = prob[0].cpu().numpy(), reg[0].cpu().numpy()
            ys, xs = np.nonzero(prob > self.thresholds[0])
            if ys.size == 0:
                continue
            # Each output cell is a 12×12 window with stride 2 in the scaled image.
            cells = np.stack([xs, ys], axis=1) * 2.0
            b = np.concatenate([cells, cells + 12], axis=1) / scale
            s, o = prob[ys, xs], reg[:, ys, xs].T
            keep = _nms(b, s, 0.5)
            boxes.append(b[keep])
            scores.append(s[keep])
            offsets.append(o[keep])
        if not boxes:
            return np.empty((0, 4))
        b, s, o = np.concatenate(boxes), np.concatenate(scores), np.concatenate(offsets)
        keep = _nms(b, s, 0.7)
        return _square(_regress(b[keep], o[keep]))

    @torch.inference_mode()
    def detect(self, image: ImageInput) -> list[Detection]:
        rgb = load_image(image, mode="rgb")
        boxes = self._stage1(rgb)
        if len(boxes):
            reg, prob = _run(self._rnet, _crops(rgb, boxes, 24), self.device)
            ok = prob > self.thresholds[1]
            boxes, prob, reg = boxes[ok], prob[ok], reg[ok]
            keep = _nms(boxes, prob, 0.7)
            boxes = _square(_regress(boxes[keep], reg[keep]))
        if len(boxes) == 0:
            return []
        reg, points, prob = _run(self._onet, _crops(rgb, boxes, 48), self.device)
        ok = prob > self.thresholds[2]
        boxes, points, prob, reg = boxes[ok], points[ok], prob[ok], reg[ok]
        # Landmarks come as x1..x5, y1..y5 relative to the O-Net input box.
        size = boxes[:, 2:4] - boxes[:, 0:2]
        points = np.stack([points[:, :5], points[:, 5:]], axis=2) * size[:, None, :] + boxes[:, None, 0:2]
        boxes = _regress(boxes, reg)
        keep = _nms(boxes, prob, 0.7, method="min")
        height, width = rgb.shape[:2]
        boxes = np.clip(boxes[keep], 0, [width, height, width, height])
        return [
            Detection(box=tuple(float(v) for v in box), score=float(p), landmarks=pts.astype(np.float32))
            for box, p, pts in zip(boxes, prob[keep], points[keep])
        ]
