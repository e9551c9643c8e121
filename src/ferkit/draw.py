"""Draw faces on a picture: box, label with probability, and a small bar per class."""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
from PIL import Image

from .atomic import write_bytes

if TYPE_CHECKING:
    from .results import Face

# One colour per canonical class (RGB), so a label looks the same in every picture.
COLOURS = {"angry": (220, 40, 40), "disgust": (120, 160, 40), "fear": (150, 60, 200), "happy": (250, 200, 30),
           "sad": (50, 110, 230), "surprise": (250, 130, 20), "neutral": (160, 160, 160),
           "contempt": (140, 90, 60)}


def _colour(label: str) -> tuple[int, int, int]:
    return COLOURS.get(label, (0, 200, 120))


def annotate(image: np.ndarray, faces: list[Face], bars: bool = True,
             ids: list[int] | None = None) -> np.ndarray:
    """A copy of the RGB `image` with each face drawn on it."""
    out = np.ascontiguousarray(image.copy())
    h, w = out.shape[:2]
    scale = max(0.35, min(1.0, (h + w) / 1600))
    thick = max(1, round(2 * scale))
    for n, face in enumerate(faces):
        x1, y1, x2, y2 = (int(round(v)) for v in face.box)
        colour = _colour(face.label)
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, thick)
        tag = f"#{ids[n]} " if ids is not None else ""
        text = f"{tag}{face.label} {face.confidence:.0%}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale, thick)
        ty = y1 - 4 if y1 - th - 6 > 0 else y2 + th + 4
        cv2.rectangle(out, (x1, ty - th - base), (x1 + tw + 4, ty + base), colour, -1)
        cv2.putText(out, text, (x1 + 2, ty), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale, (255, 255, 255), thick,
                    cv2.LINE_AA)
        if bars and face.probs:
            _draw_bars(out, face, x2 + 4 if x2 + 120 * scale < w else max(0, x1 - int(124 * scale)),
                       y1, scale)
    return out


def _draw_bars(out: np.ndarray, face: Face, x: int, y: int, scale: float) -> None:
    row = max(9, int(14 * scale))
    width = int(70 * scale)
    for i, (name, p) in enumerate(sorted(face.probs.items(), key=lambda kv: -kv[1])):
        top = y + i * row
        if top + row > out.shape[0]:
            break
        cv2.rectangle(out, (x, top + 2), (x + width, top + row - 2), (40, 40, 40), -1)
        cv2.rectangle(out, (x, top + 2), (x + int(width * p), top + row - 2), _colour(name), -1)
        cv2.putText(out, f"{name[:8]} {p:.0%}", (x + width + 3, top + row - 3), cv2.FONT_HERSHEY_SIMPLEX,
                    0.35 * scale + 0.05, (255, 255, 255), 1, cv2.LINE_AA)


def save_jpeg(path: str | Path, rgb: np.ndarray) -> Path:
    """Write the RGB array `rgb` as a JPEG, atomically."""
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=92)
    write_bytes(path, buffer.getvalue())
    return Path(path)


def save_annotated(path: str | Path, image: np.ndarray, faces: list[Face]) -> Path:
    """Write the annotated RGB `image` as a JPEG, atomically."""
    return save_jpeg(path, annotate(image, faces))
