"""PNG figures for a run: learning curves, confusion matrices, class distribution, sample predictions."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .atomic import write_bytes  # noqa: E402


def save_figure(fig, path: str | Path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    write_bytes(path, buffer.getvalue())
    return Path(path)


def plot_history(history: list[dict], path: str | Path) -> Path:
    """Accuracy and loss per epoch, training and validation side by side."""
    epochs = [h["epoch"] for h in history]
    fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, title in ((ax_acc, "acc", "Accuracy"), (ax_loss, "loss", "Loss")):
        ax.plot(epochs, [h[f"train_{key}"] for h in history], marker="o", ms=3, label="train")
        ax.plot(epochs, [h[f"val_{key}"] for h in history], marker="o", ms=3, label="validation")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    return save_figure(fig, path)


def plot_confusion(matrix: np.ndarray, class_names: list[str], path: str | Path, normalize: bool = False,
                   title: str = "Confusion matrix") -> Path:
    """Heatmap with true classes as rows; `normalize` shows each row as fractions (recall on the diagonal)."""
    values = matrix.astype(float)
    if normalize:
        values = values / np.maximum(values.sum(axis=1, keepdims=True), 1)
    k = len(class_names)
    fig, ax = plt.subplots(figsize=(1.0 + 0.8 * k, 0.8 + 0.75 * k))
    image = ax.imshow(values, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(k), class_names, rotation=45, ha="right")
    ax.set_yticks(range(k), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title + (" (row-normalised)" if normalize else ""))
    threshold = values.max() / 2 if values.size else 0
    for i in range(k):
        for j in range(k):
            text = f"{values[i, j]:.2f}" if normalize else f"{int(matrix[i, j])}"
            ax.text(j, i, text, ha="center", va="center", fontsize=8,
                    color="white" if values[i, j] > threshold else "black")
    return save_figure(fig, path)


def plot_reliability(confidence: np.ndarray, accuracy: np.ndarray, count: np.ndarray, path: str | Path,
                     ece: float, title: str = "Reliability") -> Path:
    """Accuracy against confidence per equal-width bin (from `calibration.reliability_bins`), and the
    share of faces in each bin; a calibrated model follows the diagonal."""
    bins = len(count)
    edges = np.linspace(0, 1, bins + 1)
    centres, width = (edges[:-1] + edges[1:]) / 2, 1 / bins
    filled = count > 0
    fig, (ax, ax_count) = plt.subplots(2, 1, figsize=(5, 6), sharex=True, height_ratios=(3, 1))
    ax.bar(centres[filled], accuracy[filled], width * 0.95, label="accuracy", color="tab:blue")
    ax.bar(centres[filled], (confidence - accuracy)[filled], width * 0.95, bottom=accuracy[filled],
           color="tab:red", alpha=0.3, label="gap to confidence")
    ax.plot([0, 1], [0, 1], "k--", lw=1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.set_title(f"{title}: ECE {ece:.3f}")
    ax.legend(loc="upper left", fontsize=8)
    ax_count.bar(centres, count / max(count.sum(), 1), width * 0.95, color="gray")
    ax_count.set_xlabel("confidence")
    ax_count.set_ylabel("share")
    return save_figure(fig, path)


def plot_class_distribution(counts: dict[str, dict[str, int]], path: str | Path) -> Path:
    """Grouped bars: images per class for each split ({"train": {"angry": 3995, ...}, ...})."""
    splits = list(counts)
    classes = list(next(iter(counts.values())))
    width = 0.8 / max(1, len(splits))
    x = np.arange(len(classes))
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(classes)), 4))
    for i, split in enumerate(splits):
        bars = ax.bar(x + i * width - 0.4 + width / 2, [counts[split].get(c, 0) for c in classes], width,
                      label=split)
        ax.bar_label(bars, fontsize=7)
    ax.set_xticks(x, classes, rotation=30, ha="right")
    ax.set_ylabel("images")
    ax.set_title("Class distribution")
    ax.legend()
    return save_figure(fig, path)


def _face_grid(images: np.ndarray, titles: list[str], colors: list[str], path: str | Path,
               suptitle: str = "") -> Path:
    """Gray faces in a near-square grid, each with a small coloured title."""
    cols = int(np.ceil(np.sqrt(len(images)))) or 1
    rows = int(np.ceil(len(images) / cols)) or 1
    fig, axes = plt.subplots(rows, cols, figsize=(1.7 * cols, 1.9 * rows + (0.4 if suptitle else 0)),
                             squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, image, title, color in zip(axes.ravel(), images, titles, colors):
        ax.imshow(image, cmap="gray", vmin=0, vmax=255)
        ax.set_title(title, fontsize=7, color=color)
    if suptitle:
        fig.suptitle(suptitle, fontsize=9)
    return save_figure(fig, path)


def plot_samples(images: np.ndarray, true: np.ndarray, pred: np.ndarray, probs: np.ndarray,
                 class_names: list[str], path: str | Path, count: int = 25, seed: int = 0) -> Path:
    """A grid of faces with predicted label and probability; green when right, red when wrong."""
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(images), size=min(count, len(images)), replace=False)
    titles = [f"{class_names[pred[i]]} {probs[i, pred[i]]:.0%}\ntrue: {class_names[true[i]]}" for i in pick]
    return _face_grid(images[pick], titles, ["green" if pred[i] == true[i] else "red" for i in pick], path)


def plot_top_losses(images: np.ndarray, picked: np.ndarray, true: np.ndarray, probs: np.ndarray,
                    class_names: list[str], path: str | Path) -> Path:
    """The faces `picked` (e.g. `Evaluation.top_losses()`), each titled with the model's answer and its
    probability, and the label with the probability the model gave it."""
    titles = [f"{class_names[probs[i].argmax()]} {probs[i].max():.0%}\n"
              f"true: {class_names[true[i]]} {probs[i, true[i]]:.0%}" for i in picked]
    return _face_grid(images[picked], titles, ["red"] * len(picked), path,
                      suptitle=f"The {len(picked)} most confident mistakes (answer, then label)")


def plot_over_time(seconds: list[int], means: np.ndarray, class_names: list[str], path: str | Path,
                   title: str = "Expressions over time") -> Path:
    """One line per class: mean probability (rows of `means`) at each second."""
    fig, ax = plt.subplots(figsize=(10, 4))
    for k, name in enumerate(class_names):
        ax.plot(seconds, means[:, k], label=name, lw=1.5, marker="o" if len(seconds) < 30 else None, ms=3)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("mean probability over faces")
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(ncol=4, fontsize=8)
    return save_figure(fig, path)
