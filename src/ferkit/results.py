"""What recognition found in one image or video frame: `Results`, the one way to print, tabulate and draw it.

    result = recognizer("photo.jpg")
    result.faces            # [Face(box, score, landmarks, probs), ...]
    result.to_dict()        # {"file": ..., "faces": [...]}: what `ferkit predict --json` prints
    result.to_rows()        # rows under csv_header(result.class_names, video=result.frame_index is not None)
    result.save("out.jpg")  # the picture with every face drawn on it
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import draw


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
        marks = None if self.landmarks is None else np.round(np.asarray(self.landmarks, float), 1).tolist()
        return {"box": [round(float(v), 1) for v in self.box], "score": round(float(self.score), 4),
                "landmarks": marks,
                "label": self.label, "probs": {k: round(float(v), 4) for k, v in self.probs.items()}}


@dataclass
class Prediction:
    probs: dict[str, float]

    @property
    def label(self) -> str:
        return max(self.probs, key=self.probs.get)


def format_top_k(probs: dict[str, float], k: int | None = None, skip: int = 0) -> str:
    """'happy 0.91  sad 0.05 ...': classes by falling probability, from rank `skip`, at most `k` of them."""
    ranked = sorted(probs.items(), key=lambda kv: -kv[1])
    return "  ".join(f"{name} {p:.2f}" for name, p in ranked[skip:None if k is None else skip + k])


def csv_header(class_names: Sequence[str], video: bool = False) -> list[str]:
    """Columns of a table with one row per face: per image file, or per video frame (`video=True`)."""
    where = ["frame", "time_s", "face_id"] if video else ["file", "face"]
    return [*where, "x1", "y1", "x2", "y2", "score", "label", *[f"p_{c}" for c in class_names]]


@dataclass(eq=False)  # compared by identity: equality of images and landmark arrays is not a bool
class Results:
    """The faces found in one image or video frame, and where and how fast they were found.

    source: the file, video or camera name. frame_index/time_s: the frame's place in a video (None for a
    still image). ids: tracking ids of the faces, if a tracker gave them. timing: milliseconds spent
    detecting and classifying. shape: (height, width) of the image. image: the RGB image itself.
    """

    faces: list[Face]
    class_names: list[str]
    source: str = ""
    frame_index: int | None = None
    time_s: float | None = None
    ids: list[int] | None = None
    timing: dict[str, float] = field(default_factory=dict)
    shape: tuple[int, int] = (0, 0)
    image: np.ndarray | None = field(default=None, repr=False)

    @property
    def is_frame(self) -> bool:
        return self.frame_index is not None

    def face_ids(self) -> list[int]:
        """Tracking ids, or 1, 2, ... in detection order when there is no tracker."""
        return list(self.ids) if self.ids is not None else list(range(1, len(self.faces) + 1))

    def to_dict(self, details: bool = False) -> dict:
        """JSON-ready: file and faces; for a video frame also its index, time and face ids.

        `details` adds the image shape, class names and timing (ms).
        """
        out: dict = {"file": self.source, "faces": [f.to_dict() for f in self.faces]}
        if self.is_frame:
            out.update(frame=self.frame_index, time_s=self._time(), face_ids=self.face_ids())
        if details:
            out.update(shape=list(self.shape), class_names=list(self.class_names),
                       timing_ms={k: round(v, 2) for k, v in self.timing.items()})
        return out

    def to_rows(self) -> list[list]:
        """One row per face under `csv_header(self.class_names, video=self.is_frame)`."""
        where = [self.frame_index, self._time()] if self.is_frame else [self.source]
        rows = []
        for n, face in zip(self.face_ids(), self.faces):
            d = face.to_dict()
            probs = [d["probs"][c] for c in self.class_names]
            rows.append([*where, n, *d["box"], d["score"], d["label"], *probs])
        return rows

    def summary_lines(self) -> list[str]:
        """One line per face (box, label, confidence, the next three classes), or one saying there is none."""
        name = f"{self.source} frame {self.frame_index}" if self.is_frame else self.source
        if not self.faces:
            return [f"{name}: no face found"]
        return [f"{name}: face {n} box ({','.join(f'{v:.0f}' for v in face.box)}) {face.label} "
                f"{face.confidence:.2f}  [{format_top_k(face.probs, k=3, skip=1)}]"
                for n, face in zip(self.face_ids(), self.faces)]

    def annotate(self, bars: bool = True) -> np.ndarray:
        """A copy of the RGB image with every face drawn on it (with its id when tracked)."""
        if self.image is None:
            raise ValueError("these Results hold no image to draw on")
        return draw.annotate(self.image, self.faces, bars=bars, ids=self.ids)

    def save(self, path: str | Path) -> Path:
        """Write the annotated image as a JPEG, atomically."""
        return draw.save_jpeg(path, self.annotate())

    def _time(self) -> float | None:
        return None if self.time_s is None else round(self.time_s, 3)
