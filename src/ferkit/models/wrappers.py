"""Classifiers that wrap other `FaceClassifier`s: temperature scaling, flip test-time augmentation and
averaging several models.

They work on any backend's logits or probabilities, so `load_classifier` (and `Recognizer`) put them on top
of whichever engine was chosen (PyTorch, ONNX Runtime, …) and the engines themselves stay unchanged.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import ConfigError
from .classifier import FaceClassifier, softmax
from .files import ModelInfo

TTA_CHOICES = ("none", "flip")


class _Wrapper:
    """Delegates the model's description to the wrapped classifier (`inner`)."""

    def __init__(self, inner: FaceClassifier):
        self.inner = inner

    @property
    def info(self) -> ModelInfo:
        return self.inner.info

    @property
    def class_names(self) -> list[str]:
        return self.inner.class_names


class TemperatureScaled(_Wrapper):
    """The wrapped classifier's logits divided by `temperature`, and their softmax."""

    def __init__(self, inner: FaceClassifier, temperature: float):
        if not (math.isfinite(temperature) and temperature > 0):
            raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
        super().__init__(inner)
        self.temperature = float(temperature)

    def logits(self, crops: np.ndarray, batch_size: int = 256) -> np.ndarray:
        return np.asarray(self.inner.logits(crops, batch_size), dtype=np.float32) / self.temperature

    def predict_proba(self, crops: np.ndarray, batch_size: int = 256) -> np.ndarray:
        z = self.inner.logits(crops, batch_size)
        if len(z) == 1:  # one face: Python floats; each small NumPy call costs µs right after an engine run
            return _one_row_softmax(z.tolist()[0], self.temperature)
        return softmax(np.asarray(z, dtype=np.float32) / self.temperature).astype(np.float32)


def _one_row_softmax(row: list[float], temperature: float) -> np.ndarray:
    top = max(row)
    exps = [math.exp((value - top) / temperature) for value in row]
    total = sum(exps)
    return np.array([[e / total for e in exps]], dtype=np.float32)


class _ProbabilityMean(_Wrapper):
    """A wrapper whose `predict_proba` is a mean of probabilities; its logits are their log."""

    def logits(self, crops: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Log of the averaged probabilities: their softmax is `predict_proba`."""
        return np.log(np.clip(self.predict_proba(crops, batch_size), 1e-12, None)).astype(np.float32)


class FlipAveraged(_ProbabilityMean):
    """Test-time augmentation: the mean of the probabilities of each crop and its mirror image.

    Costs two classifier passes per face (run as one batch of 2N crops).
    """

    def predict_proba(self, crops: np.ndarray, batch_size: int = 256) -> np.ndarray:
        crops = np.asarray(crops, dtype=np.uint8)
        if not len(crops):
            return self.inner.predict_proba(crops, batch_size)
        mirrored = np.ascontiguousarray(crops[:, :, ::-1])
        probs = self.inner.predict_proba(np.concatenate([crops, mirrored]), batch_size)
        return (probs[:len(crops)] + probs[len(crops):]) / 2


class Averaged(_ProbabilityMean):
    """An ensemble: the mean of several classifiers' probabilities (same classes, same input)."""

    def __init__(self, members: list[FaceClassifier]):
        if not members:
            raise ValueError("an ensemble needs at least one classifier")
        names = [list(m.class_names) for m in members]
        if any(n != names[0] for n in names):
            raise ValueError(f"the classifiers' classes differ: {names}")
        super().__init__(members[0])
        self.members = list(members)

    def predict_proba(self, crops: np.ndarray, batch_size: int = 256) -> np.ndarray:
        return np.mean([m.predict_proba(crops, batch_size) for m in self.members], axis=0).astype(np.float32)


def with_temperature(classifier: FaceClassifier) -> FaceClassifier:
    """`classifier` with its model's temperature (`info.temperature`) applied; itself when T is 1."""
    temperature = getattr(classifier.info, "temperature", 1.0)
    return classifier if temperature == 1.0 else TemperatureScaled(classifier, temperature)


def with_tta(classifier: FaceClassifier, tta: str | None) -> FaceClassifier:
    """`classifier` with test-time augmentation `tta` ("flip"; None or "none": as it is)."""
    if tta in (None, "none"):
        return classifier
    if tta == "flip":
        return FlipAveraged(classifier)
    raise ConfigError(f"unknown test-time augmentation {tta!r}; use {' or '.join(TTA_CHOICES)}")


def backend_of(classifier: FaceClassifier) -> FaceClassifier:
    """The engine under any wrappers (e.g. `OnnxClassifier`)."""
    while isinstance(classifier, _Wrapper):
        classifier = classifier.inner
    return classifier
