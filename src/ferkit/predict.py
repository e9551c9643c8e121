"""Find every face in a picture and say its expression: the `Recognizer`.

    from ferkit import Recognizer
    rec = Recognizer()                      # bundled model, MTCNN detector
    for face in rec.detect("photo.jpg"):
        print(face.box, face.label, face.probs)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .data.images import ImageInput, load_image
from .faces import Detection, Detector, create_detector, crop_faces
from .models.classifier import Classifier, resize_crops
from .models.resolver import load_classifier  # re-exported: ferkit.predict.load_classifier


@dataclass
class Face:
    """One face: its box (x1, y1, x2, y2 pixels), detector score, landmarks, and expression."""

    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray | None
    probs: dict[str, float] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return max(self.probs, key=self.probs.get) if self.probs else ""

    @property
    def confidence(self) -> float:
        return self.probs.get(self.label, 0.0)

    def to_dict(self) -> dict:
        return {"box": [round(float(v), 1) for v in self.box], "score": round(float(self.score), 4),
                "landmarks": None if self.landmarks is None else np.round(self.landmarks, 1).tolist(),
                "label": self.label, "probs": {k: round(float(v), 4) for k, v in self.probs.items()}}


@dataclass
class Prediction:
    probs: dict[str, float]

    @property
    def label(self) -> str:
        return max(self.probs, key=self.probs.get)


class Recognizer:
    """Face detection + expression classification.

    model: a .safetensors file, a run directory, a Classifier, or None for the bundled model.
    detector: "mtcnn" (default), "haar", or a Detector instance.
    backend: "auto" (ONNX Runtime on the CPU when installed, else PyTorch), "torch" or "onnx".
    """

    def __init__(self, model: str | Path | Classifier | None = None, detector: str | Detector = "mtcnn",
                 device: str = "cpu", backend: str = "auto", margin: float = 0.2, align: bool = False,
                 min_face_size: int | None = None):
        self.classifier = load_classifier(model, device=device, backend=backend)
        if isinstance(detector, str):
            options = {"min_face_size": min_face_size} if min_face_size and detector == "mtcnn" else {}
            detector = create_detector(detector, **options)
        self.detector = detector
        self.margin = margin
        self.align = align

    @property
    def class_names(self) -> list[str]:
        return self.classifier.class_names

    @property
    def input_size(self) -> int:
        return self.classifier.info.in_size

    def _probs(self, crops: np.ndarray) -> list[dict[str, float]]:
        probs = self.classifier.predict_proba(crops)
        return [dict(zip(self.class_names, map(float, row))) for row in probs]

    def crops(self, image: np.ndarray, detections: list[Detection]) -> np.ndarray:
        return crop_faces(image, detections, size=self.input_size, margin=self.margin, align=self.align)

    def detect(self, image: ImageInput) -> list[Face]:
        """Every face in `image` (path, bytes, PIL image or array: gray, RGB, RGBA), with probabilities."""
        rgb = load_image(image, mode="rgb")
        detections = self.detector.detect(rgb)
        return self.recognize(rgb, detections)

    def recognize(self, rgb: np.ndarray, detections: list[Detection]) -> list[Face]:
        """Classify already-detected faces of an RGB image."""
        probs = self._probs(self.crops(rgb, detections)) if detections else []
        return [Face(d.box, d.score, d.landmarks, p) for d, p in zip(detections, probs)]

    def classify(self, face_crops: np.ndarray | list) -> list[Prediction]:
        """Probabilities for already-cropped faces: N×H×W gray (any size), or a list of images of any kind."""
        if len(face_crops) == 0:
            return []
        if isinstance(face_crops, np.ndarray) and face_crops.ndim == 3 and face_crops.dtype == np.uint8:
            crops = face_crops
        else:
            crops = np.stack([resize_crops(load_image(c, mode="gray")[None], self.input_size)[0] for c in face_crops])
        return [Prediction(p) for p in self._probs(crops)]
