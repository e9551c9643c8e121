"""Expressions through a video: stream frames, track faces by IoU, smooth, write video + CSV + plot.

Memory stays constant however long the video: frames are read, annotated and written as they come (a
few at most wait in the read-ahead and write-behind queues), CSV rows go straight to the file, and the
emotions-over-time summary is kept per second, not per frame.
"""

from __future__ import annotations

import contextlib
import csv
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from . import plots
from .atomic import atomic_temp_path, commit_temp_path
from .background import ReadAhead, WriteBehind
from .draw import annotate
from .errors import ConfigError, OutputError, VideoError
from .faces.detector import box_iou
from .predict import Face, Recognizer
from .results import Results, csv_header
from .stream import VideoStream, frames, open_video, recognize_frame, stream  # noqa: F401  (lived here)


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
                track = _Track(self._next_id, face.box, np.array([face.probs[c] for c in class_names]),
                               frame_index)
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


@dataclass
class VideoResult:
    frames: int
    fps: float
    faces: int
    tracks: int
    per_second: dict[int, np.ndarray]
    class_names: list[str]
    seconds: float = 0.0  # the frame loop's wall time: decode, detect, classify, draw, encode

    @property
    def processing_fps(self) -> float:
        """Frames processed per second of wall time (0 if not timed)."""
        return self.frames / self.seconds if self.seconds > 0 else 0.0


class _Outputs:
    """The annotated video and the CSV, written to temporary files that commit() renames into place."""

    def __init__(self, out_path: str | Path | None, csv_path: str | Path | None, fps: float,
                 class_names: list[str]):
        self.out_path, self.csv_path, self.fps, self.class_names = out_path, csv_path, fps, class_names
        self.temp_video = self.temp_csv = self.writer = self.csv_file = None

    def __enter__(self) -> _Outputs:
        if self.csv_path is not None:
            try:
                self.temp_csv = atomic_temp_path(self.csv_path)
                self.csv_file = open(self.temp_csv, "w", newline="")
            except BaseException:
                self.__exit__()
                raise
            self.rows = csv.writer(self.csv_file)
            self.rows.writerow(csv_header(self.class_names, video=True))
        return self

    def add(self, rgb: np.ndarray, result: Results, analysed: bool) -> None:
        """One frame: its CSV rows if it was `analysed`, and the frame with `result`'s faces drawn on it."""
        if analysed and self.csv_file is not None:
            self.rows.writerows(result.to_rows())
        if self.out_path is None:
            return
        if self.writer is None:
            self.temp_video = atomic_temp_path(self.out_path)
            avi = Path(self.out_path).suffix.lower() == ".avi"
            fourcc = cv2.VideoWriter_fourcc(*("MJPG" if avi else "mp4v"))
            size = (rgb.shape[1], rgb.shape[0])
            self.writer = cv2.VideoWriter(str(self.temp_video), fourcc, self.fps, size)
            if not self.writer.isOpened():
                raise OutputError(f"{self.out_path}: cannot write a video here (try .mp4 or .avi)")
        self.writer.write(cv2.cvtColor(annotate(rgb, result.faces, ids=result.ids), cv2.COLOR_RGB2BGR))

    def commit(self) -> None:
        if self.writer is not None:
            self.writer.release()
            self.writer = None
            commit_temp_path(self.temp_video, self.out_path)
            self.temp_video = None
        if self.csv_file is not None:
            self.csv_file.close()
            commit_temp_path(self.temp_csv, self.csv_path)
            self.temp_csv = None

    def __exit__(self, *exc) -> None:
        """Whatever commit() did not rename is removed: a failed run leaves no half-written file."""
        if self.writer is not None:
            self.writer.release()
        if self.csv_file is not None and not self.csv_file.closed:
            self.csv_file.close()
        for temp in (self.temp_video, self.temp_csv):
            if temp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(temp)


def process_video(source: str | Path, recognizer: Recognizer, out_path: str | Path | None = None,
                  csv_path: str | Path | None = None, plot_path: str | Path | None = None,
                  smoothing: float = 0.0, every: int = 1, max_frames: int | None = None,
                  progress: bool | None = None) -> VideoResult:
    """Detect, track and classify faces in every `every`-th frame; write what was asked, atomically.

    Decoding runs ahead in one background thread and drawing + encoding + the CSV behind in another
    (`ferkit.background`), so they overlap detection and classification; a few frames at most wait in
    each queue.
    """
    if not 0.0 <= smoothing < 1.0 or every < 1:
        raise ConfigError(f"smoothing must be in [0, 1) and every ≥ 1 (got {smoothing:g} and {every})")
    class_names = recognizer.class_names
    tracker = FaceTracker(smoothing=smoothing)
    per_second: dict[int, np.ndarray] = {}
    count = faces_seen = 0
    start = time.perf_counter()
    with VideoStream(str(source)) as video, _Outputs(out_path, csv_path, video.fps, class_names) as outputs:
        bar = _progress_bar(video, source, max_frames, progress)
        with ReadAhead(stream(video, max_frames=max_frames)) as frames_ahead, \
                WriteBehind(outputs.add) as writer:
            for frame in frames_ahead:
                analysed = frame.index % every == 0
                if analysed:  # the other frames show the last analysed frame's faces
                    result = recognize_frame(recognizer, frame)
                    result.ids = tracker.update(frame.index, result.faces, class_names)
                    faces_seen += len(result.faces)
                    _add_to_summary(per_second, result, video.fps)
                writer.submit(frame.image, result, analysed)
                count += 1
                bar.update(1)
        bar.close()
        if count == 0:
            raise VideoError(f"{source}: video has no frames")
        outputs.commit()
    result = VideoResult(count, video.fps, faces_seen, tracker.tracks_started, per_second, class_names,
                         time.perf_counter() - start)
    if plot_path is not None:
        plot_emotions_over_time(result, plot_path)
    return result


def _progress_bar(video: VideoStream, source: str | Path, max_frames: int | None,
                  progress: bool | None) -> tqdm:
    total = video.frame_count
    return tqdm(total=min(total, max_frames or total) if total else max_frames, unit="frame",
                disable=progress is False if progress is not None else None, desc=Path(str(source)).name)


def _add_to_summary(per_second: dict[int, np.ndarray], result: Results, fps: float) -> None:
    """Sum each class's probability and count the faces, per second of video."""
    names = result.class_names
    acc = per_second.setdefault(int(result.frame_index / fps), np.zeros(len(names) + 1))
    for face in result.faces:
        acc[:-1] += [face.probs[c] for c in names]
        acc[-1] += 1


def plot_emotions_over_time(result: VideoResult, path: str | Path) -> Path:
    """Mean probability of each expression per second of video (seconds without faces left blank)."""
    seconds = sorted(result.per_second)
    sums = np.array([result.per_second[s] for s in seconds]).reshape(len(seconds),
                                                                     len(result.class_names) + 1)
    counts = sums[:, -1:]
    means = np.divide(sums[:, :-1], counts, out=np.full_like(sums[:, :-1], np.nan), where=counts > 0)
    title = f"Expressions over time ({result.frames} frames, {result.tracks} tracked faces)"
    return plots.plot_over_time(seconds, means, result.class_names, path, title)
