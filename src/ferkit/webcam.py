"""Real-time expressions from a camera in a window, with an fps counter.

OpenCV's pip wheel for servers has no GUI, so the window is Tk (in the Python standard library).
A video file can stand in for the camera (`source=`), and `show=False` runs the same loop headless (the
frames are still drawn, only not shown), so `ferkit webcam --source clip.mp4 --no-window` measures its fps.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass

import cv2
import numpy as np

from .errors import FerkitError
from .predict import Recognizer
from .results import Results
from .stream import VideoStream, stream_inference
from .video import FaceTracker


@dataclass
class WebcamStats:
    frames: int
    seconds: float
    faces: int

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


class _Window:
    def __init__(self, title: str):
        if (sys.platform.startswith("linux") and not os.environ.get("DISPLAY")
                and not os.environ.get("WAYLAND_DISPLAY")):
            raise FerkitError("no display to show the webcam window on (DISPLAY is not set); "
                              "use `ferkit video FILE --out annotated.mp4` to process a recording instead")
        try:
            import tkinter as tk

            from PIL import ImageTk  # noqa: F401  (fails early if Pillow lacks Tk support)
            self.root = tk.Tk()
        except Exception as exc:
            raise FerkitError(f"cannot open a window ({exc})") from exc
        self.root.title(title)
        self.label = tk.Label(self.root)
        self.label.pack()
        self.open = True
        self.root.protocol("WM_DELETE_WINDOW", self.close)
        self.root.bind("<Escape>", lambda _: self.close())
        self.root.bind("q", lambda _: self.close())

    def show(self, rgb: np.ndarray) -> None:
        from PIL import Image, ImageTk

        self._photo = ImageTk.PhotoImage(Image.fromarray(rgb))  # keep a reference or Tk drops the image
        self.label.configure(image=self._photo)
        self.root.update()

    def close(self) -> None:
        if self.open:
            self.open = False
            self.root.destroy()


def run_webcam(recognizer: Recognizer, camera: int = 0, source: str | None = None, show: bool = True,
               max_frames: int | None = None, smoothing: float = 0.5) -> WebcamStats:
    """Loop until the window is closed (Esc/q), the stream ends, or `max_frames` frames were shown."""
    window = _Window("ferkit webcam — Esc to quit") if show else None
    tracker = FaceTracker(smoothing=smoothing)
    count = faces_seen = 0
    fps = 0.0
    start = last = time.perf_counter()
    try:
        with VideoStream(source if source is not None else str(camera)) as video:
            for result in stream_inference(recognizer, video, max_frames=max_frames):
                result.ids = tracker.update(result.frame_index, result.faces, result.class_names)
                faces_seen += len(result.faces)
                now = time.perf_counter()
                fps = 0.9 * fps + 0.1 / max(now - last, 1e-6) if count else 1.0 / max(now - last, 1e-6)
                last = now
                count += 1
                shown = _with_fps(result, fps)  # drawn without a window too: the loop measures the same work
                if window is not None:
                    window.show(shown)
                    if not window.open:
                        break
    finally:
        if window is not None:
            window.close()
    if count == 0:
        raise FerkitError(f"{source or f'camera {camera}'}: gave no frames")
    return WebcamStats(count, time.perf_counter() - start, faces_seen)


def _with_fps(result: Results, fps: float) -> np.ndarray:
    shown = result.annotate()
    cv2.putText(shown, f"{fps:.1f} fps", (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 0), 2,
                cv2.LINE_AA)
    return shown
