"""Face detection (YuNet, the default; MTCNN; Haar cascade) and face crops for expression recognition.

The names below are imported on first use (PEP 562), so that `DEFAULT_DETECTOR` costs the command line
nothing: MTCNN alone would pull in PyTorch.
"""

from __future__ import annotations

import importlib

# The detector every command and `Recognizer` uses unless told otherwise. YuNet finds as many labelled
# faces as MTCNN or more, with the same five landmarks, about 10× faster (BENCHMARKS.md, *Face detection*).
# Its landmarks sit a little differently from MTCNN's; one framing template serves both (faces/framing.py).
DEFAULT_DETECTOR = "yunet"

_WHERE = {
    "crop_face": "crop", "crop_faces": "crop", "detect_and_crop": "crop",
    "Detection": "detector", "Detector": "detector", "box_iou": "detector", "create_detector": "detector",
    "list_detectors": "detector", "match_boxes": "detector", "match_faces": "detector",
    "Framing": "framing", "HaarDetector": "haar", "MTCNNDetector": "mtcnn", "YuNetDetector": "yunet",
}

__all__ = ["DEFAULT_DETECTOR", *_WHERE]


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    globals()[name] = value  # found at once next time
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
