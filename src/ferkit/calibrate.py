"""Fit a model's calibration temperature on a validation split and store it in the model file.

`ferkit train` does this at the end of every run (on the run's validation split); `ferkit calibrate` does
it for an existing model. Never fit on a test split: its NLL and ECE would no longer measure anything.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .data.dataset import FaceDataset
from .evaluate import align_labels
from .models.calibration import (
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
    softmax,
)
from .models.classifier import Classifier, FaceClassifier
from .models.files import write_temperature


@dataclass
class Calibration:
    """A fitted temperature and what it did to the split it was fitted on."""

    temperature: float
    split: str
    images: int
    nll_before: float
    nll_after: float
    ece_before: float
    ece_after: float

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        return (f"temperature {self.temperature:.4f} fitted on {self.split}, {self.images} images: "
                f"NLL {self.nll_before:.4f} → {self.nll_after:.4f}, "
                f"ECE {self.ece_before:.4f} → {self.ece_after:.4f}")


def split_label(data: FaceDataset, split: str) -> str:
    """`split`, with the dataset's own name for it where it has one: "val (PublicTest)"."""
    usages = set(data.usage.tolist()) if data.usage is not None else set()
    return f"{split} ({next(iter(usages))})" if len(usages) == 1 else split


def calibrate(classifier: FaceClassifier, data: FaceDataset, split: str = "val",
              batch_size: int = 256) -> Calibration:
    """The temperature that minimises the NLL of `data` under `classifier`'s own (uncalibrated) logits."""
    labels = align_labels(classifier.class_names, data)
    logits = np.asarray(classifier.logits(data.images, batch_size), dtype=np.float64)
    temperature = fit_temperature(logits, labels)
    return Calibration(
        temperature=temperature, split=split, images=len(labels),
        nll_before=negative_log_likelihood(logits, labels),
        nll_after=negative_log_likelihood(logits, labels, temperature),
        ece_before=expected_calibration_error(softmax(logits), labels),
        ece_after=expected_calibration_error(softmax(logits / temperature), labels))


def calibrate_model_file(path: str | Path, data: FaceDataset, split: str = "val",
                         out: str | Path | None = None, device: str = "cpu") -> Calibration:
    """Fit the temperature of model file `path` on `data` and write it into `out` (default: `path`)."""
    calibration = calibrate(Classifier.load(path, device=device, precision="fp32"), data, split)
    write_temperature(path, calibration.temperature, out)
    return calibration
