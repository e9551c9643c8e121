"""Expressions through a video: stream frames, track faces by IoU, smooth, write video + CSV + plot.

Memory stays constant however long the video: frames are read, annotated and written one at a
time, and the emotions-over-time summary is kept per second, not per frame.
"""

from __future__ import annotations

import contextlib
import csv
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from . import plots
from .atomic import atomic_temp_path, commit_temp_path
from .draw import annotate
from .errors import ConfigError, OutputError, VideoError
from .faces.detector import box_iou
from .predict import Face, Recognizer

# FFmpeg (inside OpenCV) prints its own complaints about a damaged file ("moov atom not found") straight to
# stderr; ferkit says what is wrong in one line instead. OpenCV reads this when its FFmpeg backend starts;
# set OPENCV_FFMPEG_LOGLEVEL yourself to see FFmpeg's messages.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET


@dataclass
class _Track:
    id: int
    box: tuple[float, float, float, float]
    probs: np.ndarray
    last_seen: int


@dataclass
class FaceTracker:
    """Greedy IoU matching of each frame's faces to the previous ones; a face keeps its id while it is seen.

    smoothing: weight of the past in an exponential moving average of the probabilities (0 = none).
    """

    min_iou: float = 0.3
    max_age: int = 15
    smoothing: float = 0.0
    _tracks: list[_Track] = field(default_factory=list)
    _next_id: int = 1

    def update(self, frame_index: int, faces: list[Face], class_names: list[str]) -> list[int]:
        """Assign ids to `faces` (in order) and smooth their probabilities in place."""
        self._tracks = [t for t in self._tracks if frame_index - t.last_seen <= self.max_age]
        ids = [0] * len(faces)
        if faces and self._tracks:
            iou = box_iou(np.array([f.box for f in faces]), np.array([t.box for t in self._tracks]))
            while iou.size and iou.max() >= self.min_iou:
                i, j = np.unravel_index(np.argmax(iou), iou.shape)
                ids[i] = self._tracks[j].id
                self._follow(self._tracks[j], faces[i], frame_index, class_names)
                iou[i, :] = -1
                iou[:, j] = -1
        for i, face in enumerate(faces):
            if not ids[i]:
                track = _Track(self._next_id, face.box, np.array([face.probs[c] for c in class_names]), frame_index)
                self._tracks.append(track)
                ids[i] = track.id
                self._next_id += 1
        return ids

    @property
    def tracks_started(self) -> int:
        return self._next_id - 1

    def _follow(self, track: _Track, face: Face, frame_index: int, class_names: list[str]) -> None:
        new = np.array([face.probs[c] for c in class_names])
        track.probs = self.smoothing * track.probs + (1 - self.smoothing) * new
        track.box, track.last_seen = face.box, frame_index
        face.probs = dict(zip(class_names, map(float, track.probs)))


def open_video(source: str | int) -> cv2.VideoCapture:
    if isinstance(source, str) and not source.isdigit():
        path = Path(source)
        if not path.exists():
            raise VideoError(f"{path}: no such video file")
        if path.is_dir():
            raise VideoError(f"{path}: is a directory, expected a video file")
    capture = cv2.VideoCapture(int(source) if isinstance(source, int) or source.isdigit() else str(source))
    if not capture.isOpened():
        kind = "camera" if isinstance(source, int) or str(source).isdigit() else "video"
        raise VideoError(f"{source}: cannot open this {kind}" + (" (not a video file OpenCV can decode)"
                                                                   if kind == "video" else ""))
    return capture


def frames(capture: cv2.VideoCapture) -> Iterator[np.ndarray]:
    """RGB frames until the stream ends."""
    while True:
        ok, frame = capture.read()
        if not ok:
            return
        yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


@dataclass
class VideoResult:
    frames: int
    fps: float
    faces: int
    tracks: int
    per_second: dict[int, np.ndarray]
    class_names: list[str]


def _writer_fourcc(path: Path) -> int:
    return cv2.VideoWriter_fourcc(*("MJPG" if path.suffix.lower() == ".avi" else "mp4v"))


def process_video(source: str | Path, recognizer: Recognizer, out_path: str | Path | None = None,
                  csv_path: str | Path | None = None, plot_path: str | Path | None = None, smoothing: float = 0.0,
                  every: int = 1, max_frames: int | None = None, progress: bool | None = None) -> VideoResult:
    """Detect, track and classify faces in every `every`-th frame; write what was asked, atomically."""
    if not 0.0 <= smoothing < 1.0 or every < 1:
        raise ConfigError(f"smoothing must be in [0, 1) and every ≥ 1 (got {smoothing:g} and {every})")
    capture = open_video(str(source))
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    class_names = recognizer.class_names
    tracker = FaceTracker(smoothing=smoothing)
    per_second: dict[int, np.ndarray] = {}
    temp_video = temp_csv = None
    writer = csv_file = None
    count = faces_seen = 0
    faces: list[Face] = []
    ids: list[int] = []
    try:
        if csv_path is not None:
            temp_csv = atomic_temp_path(csv_path)
            csv_file = open(temp_csv, "w", newline="")
            rows = csv.writer(csv_file)
            rows.writerow(["frame", "time_s", "face_id", "x1", "y1", "x2", "y2", "score", "label",
                           *[f"p_{c}" for c in class_names]])
        bar = tqdm(total=min(total, max_frames or total) if total else max_frames, unit="frame",
                   disable=progress is False if progress is not None else None, desc=Path(str(source)).name)
        for frame in frames(capture):
            if max_frames is not None and count >= max_frames:
                break
            if count % every == 0:
                faces = recognizer.detect(frame)
                ids = tracker.update(count, faces, class_names)
                faces_seen += len(faces)
                second = int(count / fps)
                acc = per_second.setdefault(second, np.zeros(len(class_names) + 1))
                for face in faces:
                    acc[:-1] += [face.probs[c] for c in class_names]
                    acc[-1] += 1
                if csv_file is not None:
                    for face, face_id in zip(faces, ids):
                        rows.writerow([count, round(count / fps, 3), face_id, *(round(v, 1) for v in face.box),
                                       round(face.score, 4), face.label,
                                       *(round(face.probs[c], 4) for c in class_names)])
            if out_path is not None:
                if writer is None:
                    temp_video = atomic_temp_path(out_path)
                    writer = cv2.VideoWriter(str(temp_video), _writer_fourcc(Path(out_path)), fps,
                                             (frame.shape[1], frame.shape[0]))
                    if not writer.isOpened():
                        raise OutputError(f"{out_path}: cannot write a video here (try .mp4 or .avi)")
                writer.write(cv2.cvtColor(annotate(frame, faces, ids=ids), cv2.COLOR_RGB2BGR))
            count += 1
            bar.update(1)
        bar.close()
        if count == 0:
            raise VideoError(f"{source}: video has no frames")
        if writer is not None:
            writer.release()
            writer = None
            commit_temp_path(temp_video, out_path)
            temp_video = None
        if csv_file is not None:
            csv_file.close()
            commit_temp_path(temp_csv, csv_path)
            temp_csv = None
    finally:
        capture.release()
        if writer is not None:
            writer.release()
        if csv_file is not None and not csv_file.closed:
            csv_file.close()
        for temp in (temp_video, temp_csv):
            if temp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(temp)
    result = VideoResult(count, fps, faces_seen, tracker.tracks_started, per_second, class_names)
    if plot_path is not None:
        plot_emotions_over_time(result, plot_path)
    return result


def plot_emotions_over_time(result: VideoResult, path: str | Path) -> Path:
    """Mean probability of each expression per second of video (seconds without faces left blank)."""
    seconds = sorted(result.per_second)
    sums = np.array([result.per_second[s] for s in seconds]).reshape(len(seconds), len(result.class_names) + 1)
    counts = sums[:, -1:]
    means = np.divide(sums[:, :-1], counts, out=np.full_like(sums[:, :-1], np.nan), where=counts > 0)
    title = f"Expressions over time ({result.frames} frames, {result.tracks} tracked faces)"
    return plots.plot_over_time(seconds, means, result.class_names, path, title)
