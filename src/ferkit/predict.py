"""Find every face in a picture and say its expression: the `Recognizer`.

    from ferkit import Recognizer
    rec = Recognizer()                      # bundled model, YuNet detector
    result = rec("photo.jpg")               # Results: faces, source, timing, image
    for face in result.faces:
        print(face.box, face.label, face.probs)
"""

from __future__ import annotations

import os
import time
import warnings

import numpy as np

from .data.images import ImageInput, load_image
from .faces import DEFAULT_DETECTOR, Detection, Detector, Framing, create_detector, crop_faces
from .faces.framing import as_framing
from .models.classifier import FaceClassifier, resize_crops
from .models.resolver import ModelSpec, load_classifier  # re-exported: ferkit.predict.load_classifier
from .models.wrappers import with_tta
from .results import Face, Prediction, Results


class Recognizer:
    """Face detection + expression classification.

    model: anything `ferkit.models.resolve` accepts ('default' or None for the bundled model, a .safetensors
    or .onnx file, a run directory) or a ready classifier.
    detector: "yunet" (`ferkit.faces.DEFAULT_DETECTOR`), "mtcnn", "haar", or a Detector instance;
    `min_face_size`: the smallest face to keep, in pixels (every detector has one).
    backend: "auto" (the fastest engine that keeps the fp32 labels: ONNX Runtime int8 with fp32 re-checks of
    near-ties where the model has an int8 twin, as the bundled one has, else ONNX Runtime fp32; PyTorch
    without ONNX Runtime), "torch", "onnx" (fp32) or "int8" (`ferkit.models.load_classifier`).
    framing: how a face becomes the classifier's crop (`ferkit.faces.Framing`; default: the landmarks
    placed as in FER2013). `margin=m` alone is short for the box framing with margin m; `align` levels
    the eyes.
    tta: test-time augmentation; "flip" averages each face's probabilities with its mirror image's
    (twice the classifier time). The model's calibration temperature, if any, is applied either way.
    """

    def __init__(self, model: ModelSpec | FaceClassifier = None, detector: str | Detector = DEFAULT_DETECTOR,
                 device: str = "cpu", backend: str = "auto", framing: Framing | str | None = None,
                 margin: float | None = None, align: bool | None = None, min_face_size: int | None = None,
                 tta: str | None = None):
        self.classifier = with_tta(load_classifier(model, device=device, backend=backend), tta)
        if isinstance(detector, str):
            options = {"min_face_size": min_face_size} if min_face_size else {}
            detector = create_detector(detector, **options)
        self.detector = detector
        self.framing = as_framing(framing, margin, align)

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
        """The classifier's crops of `detections` in `image` (N×size×size uint8), framed by `self.framing`."""
        return crop_faces(image, detections, size=self.input_size, framing=self.framing)

    def __call__(self, image: ImageInput, source: str | None = None) -> Results:
        """Every face in `image` (path, bytes, PIL image or array: gray, RGB, RGBA), with probabilities.

        `source` names the image in the Results (default: the path, if `image` is one).
        """
        rgb = load_image(image, mode="rgb")
        start = time.perf_counter()
        detections = self.detector.detect(rgb)
        detected = time.perf_counter()
        faces = self.recognize(rgb, detections)
        timing = {"detect": (detected - start) * 1000, "classify": (time.perf_counter() - detected) * 1000}
        if source is None:
            source = os.fspath(image) if isinstance(image, (str, os.PathLike)) else ""
        return Results(faces, list(self.class_names), source, timing=timing, shape=rgb.shape[:2], image=rgb)

    def detect(self, image: ImageInput) -> list[Face]:
        """Deprecated: `recognizer(image).faces` (unlike `Detector.detect`, this classified the faces too)."""
        warnings.warn("Recognizer.detect() is deprecated; use recognizer(image), which returns Results "
                      "(its .faces is what detect() returned)", DeprecationWarning, stacklevel=2)
        return self(image).faces

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
            crops = np.stack([resize_crops(load_image(c, mode="gray")[None], self.input_size)[0]
                              for c in face_crops])
        return [Prediction(p) for p in self._probs(crops)]
