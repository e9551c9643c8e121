"""Two models on the same faces: is the difference in accuracy more than chance?

`ferkit evaluate --model A --against B --data ...` scores both models on the same faces of each dataset
(the same split, detector, framing and matching), then counts the faces only one of them gets right.
Under "no difference" those discordant faces split evenly, so McNemar's exact test (a two-sided binomial
test on them) says how surprising the split is. A missed face counts as wrong for the model that missed it.
Accuracy intervals are Wilson 95 % score intervals, each model on its own.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy.stats import binomtest

from .errors import ConfigError
from .evaluate_photos import PhotoEvaluation

Z_95 = 1.959963984540054  # the standard normal's 97.5th percentile


@dataclass
class PairedComparison:
    """Model A against model B on one dataset's faces."""

    dataset: str
    split: str
    mode: str
    faces: int
    accuracy_a: float
    accuracy_b: float
    only_a: int  # faces A gets right and B wrong
    only_b: int
    p_value: float  # McNemar's exact test, two-sided

    @property
    def difference(self) -> float:
        return self.accuracy_a - self.accuracy_b

    def to_dict(self) -> dict:
        return asdict(self) | {"difference": self.difference}


def wilson_interval(right: int, total: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval of a proportion (95 % by default); (0, 1) for no trials."""
    if total == 0:
        return 0.0, 1.0
    p = right / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return max(0.0, centre - half), min(1.0, centre + half)


def discordant(right_a: np.ndarray, right_b: np.ndarray) -> tuple[int, int]:
    """(faces only A gets right, faces only B gets right), from the two models' per-face hits."""
    right_a, right_b = np.asarray(right_a, dtype=bool), np.asarray(right_b, dtype=bool)
    return int((right_a & ~right_b).sum()), int((right_b & ~right_a).sum())


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided p-value that the discordant faces split this unevenly if both models were equally good."""
    n = only_a + only_b
    return 1.0 if n == 0 else float(binomtest(only_a, n, 0.5).pvalue)


def compare(a: PhotoEvaluation, b: PhotoEvaluation) -> PairedComparison:
    """A against B; both must be evaluations of the same faces with the same labels."""
    if len(a.y_true) != len(b.y_true) or not np.array_equal(a.y_true, b.y_true) \
            or list(a.class_names) != list(b.class_names):
        raise ConfigError(f"{a.dataset}: the two models were not scored on the same faces and classes "
                          f"({len(a.y_true)} against {len(b.y_true)} faces; classes {a.class_names} against "
                          f"{b.class_names}); compare models with the same classes")
    only_a, only_b = discordant(a.y_pred == a.y_true, b.y_pred == b.y_true)
    return PairedComparison(a.dataset, a.split_label, a.mode, len(a.y_true), a.accuracy, b.accuracy, only_a,
                            only_b, mcnemar_exact(only_a, only_b))


def _pct_interval(accuracy: float, faces: int) -> str:
    low, high = wilson_interval(round(accuracy * faces), faces)
    return f"{100 * accuracy:.1f} % ({100 * low:.1f}–{100 * high:.1f})"


def format_comparison(rows: list[PairedComparison], name_a: str, name_b: str) -> str:
    """A Markdown table: each model's accuracy with its 95 % interval, the difference, the discordant faces
    and McNemar's p."""
    head = (f"| dataset | split | path | faces | A: {name_a} | B: {name_b} | A − B | only A right "
            "| only B right | McNemar p |")
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        a, b = _pct_interval(r.accuracy_a, r.faces), _pct_interval(r.accuracy_b, r.faces)
        lines.append(f"| {r.dataset} | {r.split} | {r.mode} | {r.faces} | {a} | {b} "
                     f"| {100 * r.difference:+.1f} | {r.only_a} | {r.only_b} | {r.p_value:.3g} |")
    return "\n".join(lines) + "\n"
