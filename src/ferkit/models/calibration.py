"""Temperature scaling (Guo et al. 2017): one number T > 0 that makes a classifier's confidence honest.

softmax(z / T) keeps every prediction (T does not change the arg max) and only sharpens (T < 1) or softens
(T > 1) the probabilities. T is fitted on a validation split by minimising the negative log-likelihood, and
ships in the model file (`ModelInfo.temperature`); `load_classifier` wraps every backend in
`wrappers.TemperatureScaled`, so the PyTorch and ONNX Runtime classifiers stay unchanged. Because
softmax(log p / T) == softmax(z / T), T also applies on top of probabilities.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .classifier import softmax  # noqa: F401  (the one softmax; re-exported for calibrate.py)

ECE_BINS = 15
LOG_T_RANGE = (math.log(0.05), math.log(20.0))  # the search interval; real models land near 1-3


def log_softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def negative_log_likelihood(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean NLL of `labels` under softmax(logits / temperature); logits may be log-probabilities."""
    labels = np.asarray(labels)
    if not len(labels):
        return 0.0
    log_p = log_softmax(np.asarray(logits, dtype=np.float64) / temperature)
    return float(-log_p[np.arange(len(labels)), labels].mean())


def fit_temperature(logits: np.ndarray | torch.Tensor, labels: np.ndarray) -> float:
    """The T > 0 that minimises the NLL of `labels` under softmax(logits / T) (bounded search on log T)."""
    from scipy.optimize import minimize_scalar  # only when fitting: keeps scipy out of every model load

    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels)
    if logits.ndim != 2 or len(logits) != len(labels) or not len(labels):
        raise ValueError(f"need N×classes logits and N labels, got {logits.shape} and {labels.shape}")
    result = minimize_scalar(lambda log_t: negative_log_likelihood(logits, labels, math.exp(log_t)),
                             bounds=LOG_T_RANGE, method="bounded", options={"xatol": 1e-5})
    return float(math.exp(result.x))


def reliability_bins(probs: np.ndarray, labels: np.ndarray,
                     bins: int = ECE_BINS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per equal-width confidence bin: (mean confidence, accuracy, count); empty bins hold 0."""
    probs = np.asarray(probs, dtype=np.float64)
    confidence = probs.max(axis=1) if len(probs) else np.zeros(0)
    correct = (probs.argmax(axis=1) == np.asarray(labels)) if len(probs) else np.zeros(0)
    # bin i holds confidences in (i/bins, (i+1)/bins]; a confidence of exactly 0 joins the first bin
    index = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    count = np.bincount(index, minlength=bins)
    safe = np.maximum(count, 1)
    mean_confidence = np.bincount(index, weights=confidence, minlength=bins) / safe
    accuracy = np.bincount(index, weights=correct.astype(np.float64), minlength=bins) / safe
    return mean_confidence, accuracy, count


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE: the count-weighted mean gap between confidence and accuracy over equal-width bins."""
    if not len(labels):
        return 0.0
    confidence, accuracy, count = reliability_bins(probs, labels, bins)
    return float((count * np.abs(confidence - accuracy)).sum() / count.sum())
