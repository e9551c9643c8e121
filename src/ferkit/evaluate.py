"""Score a trained model on a dataset: accuracy, per-class report, confusion matrix, a run's report files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.metrics import classification_report, confusion_matrix

from . import plots
from .atomic import write_json, write_text
from .data.dataset import FaceDataset
from .errors import ModelFileError
from .models.calibration import expected_calibration_error, reliability_bins
from .models.classifier import FaceClassifier


@dataclass
class Evaluation:
    split: str
    class_names: list[str]
    y_true: np.ndarray
    y_pred: np.ndarray
    probs: np.ndarray

    @property
    def accuracy(self) -> float:
        return float((self.y_true == self.y_pred).mean()) if len(self.y_true) else 0.0

    def has_probs(self) -> np.ndarray:
        """Which faces have probabilities: all of them here (a photo's missed face has none)."""
        return np.ones(len(self.y_true), dtype=bool)

    def scored(self) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities, true labels) of the faces that have probabilities."""
        mask = self.has_probs()
        return self.probs[mask], self.y_true[mask]

    def top_losses(self, count: int = 24) -> np.ndarray:
        """Indices of up to `count` wrong answers with the highest loss (−log p of the true class), worst
        first: the confident mistakes, where label noise and real failures show."""
        p_true = self.probs[np.arange(len(self.y_true)), self.y_true]
        wrong = np.flatnonzero(self.has_probs() & (self.y_pred != self.y_true))
        return wrong[np.argsort(p_true[wrong], kind="stable")][:count]

    @property
    def loss(self) -> float:
        """Negative log-likelihood (mean) of the true labels."""
        probs, y_true = self.scored()
        picked = probs[np.arange(len(y_true)), y_true]
        return float(-np.log(np.clip(picked, 1e-12, None)).mean()) if len(y_true) else 0.0

    @property
    def ece(self) -> float:
        """Expected calibration error, 15 equal-width confidence bins."""
        return expected_calibration_error(*self.scored())

    def plot_reliability(self, path: str | Path, title: str = "Reliability") -> Path:
        return plots.plot_reliability(*reliability_bins(*self.scored()), path, ece=self.ece,
                                      title=f"{title} ({self.split})")

    @property
    def confusion(self) -> np.ndarray:
        return confusion_matrix(self.y_true, self.y_pred, labels=range(len(self.class_names)))

    def report(self) -> dict:
        return classification_report(self.y_true, self.y_pred, labels=range(len(self.class_names)),
                                     target_names=self.class_names, output_dict=True, zero_division=0)

    def report_text(self) -> str:
        text = classification_report(self.y_true, self.y_pred, labels=range(len(self.class_names)),
                                     target_names=self.class_names, digits=4, zero_division=0)
        return (f"{self.split}: accuracy {self.accuracy:.4f} on {len(self.y_true)} images; "
                f"NLL {self.loss:.4f}, ECE {self.ece:.4f}\n\n{text}")

    def to_dict(self) -> dict:
        return {"split": self.split, "images": len(self.y_true), "accuracy": self.accuracy, "loss": self.loss,
                "ece": self.ece,
                "per_class": self.report(), "confusion_matrix": self.confusion.tolist(),
                "class_names": self.class_names}


def align_labels(model_classes: list[str], data: FaceDataset) -> np.ndarray:
    """The data's labels as indices into the model's classes; refuse data with classes the model lacks."""
    unknown = [c for c in data.class_names if c not in model_classes]
    present = set(np.unique(data.labels).tolist())
    unknown_present = [c for i, c in enumerate(data.class_names) if c in unknown and i in present]
    if unknown_present:
        where = data.meta.get("root") or data.name or "the data"
        raise ModelFileError(f"{where}: the model knows {model_classes} but the data has {unknown_present}; "
                             "evaluate on data with the model's class set")
    mapping = np.array([model_classes.index(c) if c in model_classes else -1 for c in data.class_names])
    return mapping[data.labels]


def evaluate(classifier: FaceClassifier, data: FaceDataset, split: str = "test",
             batch_size: int = 256) -> Evaluation:
    y_true = align_labels(classifier.class_names, data)
    probs = classifier.predict_proba(data.images, batch_size=batch_size)
    return Evaluation(split, classifier.class_names, y_true, probs.argmax(1), probs)


def write_reports(run_dir: str | Path, evaluations: list[Evaluation], history: list[dict] | None = None,
                  split_counts: dict[str, dict[str, int]] | None = None,
                  samples: FaceDataset | None = None, extra: dict | None = None) -> dict:
    """metrics.json (with `extra` entries), report.txt and plots/*.png for a run; returns the metrics dict."""
    run_dir = Path(run_dir)
    plot_dir = run_dir / "plots"
    metrics = {e.split: e.to_dict() for e in evaluations} | (extra or {})
    write_json(run_dir / "metrics.json", metrics)
    write_text(run_dir / "report.txt", "\n\n".join(e.report_text() for e in evaluations) + "\n")
    if history:
        plots.plot_history(history, plot_dir / "curves.png")
    if split_counts:
        plots.plot_class_distribution(split_counts, plot_dir / "class_distribution.png")
    for e in evaluations:
        plots.plot_confusion(e.confusion, e.class_names, plot_dir / f"confusion_{e.split}.png",
                             title=f"Confusion matrix ({e.split})")
        plots.plot_confusion(e.confusion, e.class_names, plot_dir / f"confusion_{e.split}_normalised.png",
                             normalize=True, title=f"Confusion matrix ({e.split})")
        e.plot_reliability(plot_dir / f"reliability_{e.split}.png")
    if samples is not None and evaluations:
        last = evaluations[-1]
        plots.plot_samples(samples.images, last.y_true, last.y_pred, last.probs, last.class_names,
                           plot_dir / f"samples_{last.split}.png")
        worst = last.top_losses()
        if len(worst):
            plots.plot_top_losses(samples.images, worst, last.y_true, last.probs, last.class_names,
                                  plot_dir / f"top_losses_{last.split}.png")
    return metrics
