"""Frames from any source: an image file, a list of files, a folder, a video file or a camera.

    for result in stream_inference(recognizer, "clip.mp4", every=5):   # Results of frames 0, 5, 10, ...
        print(result.frame_index, result.time_s, [f.label for f in result.faces])

Unreadable images in a list or folder go to `on_error(path, error)` when given (the others are still
read), else raise. Videos and cameras are read one frame at a time, so memory stays constant.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Union

import cv2
import numpy as np

from .data import IMAGE_EXTENSIONS
from .data.images import load_image
from .errors import ConfigError, DataError, FerkitError, ImageError, VideoError
from .results import Results

if TYPE_CHECKING:
    from .predict import Recognizer

# FFmpeg (inside OpenCV) prints its own complaints about a damaged file ("moov atom not found") straight to
# stderr; ferkit says what is wrong in one line instead. OpenCV reads this when its FFmpeg backend starts;
# set OPENCV_FFMPEG_LOGLEVEL yourself to see FFmpeg's messages.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET

VIDEO_EXTENSIONS = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"})

ErrorHandler = Callable[[Path, FerkitError], None]


@dataclass
class Frame:
    """One RGB image and where it came from; `index` and `time_s` are None for still images."""

    image: np.ndarray
    source: str
    index: int | None = None
    time_s: float | None = None


def _is_camera(source: str | int) -> bool:
    return isinstance(source, int) or source.isdigit()


def open_video(source: str | int) -> cv2.VideoCapture:
    """An opened capture of a video file or a camera (int or digit string), or a VideoError saying why not."""
    if not _is_camera(source):
        path = Path(source)
        if not path.exists():
            raise VideoError(f"{path}: no such video file")
        if path.is_dir():
            raise VideoError(f"{path}: is a directory, expected a video file")
    with _opencv_silent():  # its own warnings would come before ferkit's one error line
        capture = cv2.VideoCapture(int(source) if _is_camera(source) else str(source))
    if not capture.isOpened():
        kind = "camera" if _is_camera(source) else "video"
        raise VideoError(f"{source}: cannot open this {kind}" + (" (not a video file OpenCV can decode)"
                                                                   if kind == "video" else ""))
    return capture


@contextmanager
def _opencv_silent() -> Iterator[None]:
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(level)


def frames(capture: cv2.VideoCapture) -> Iterator[np.ndarray]:
    """RGB frames until the stream ends."""
    while True:
        ok, frame = capture.read()
        if not ok:
            return
        yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


class VideoStream:
    """The frames of a video file or camera, opened at once (so a bad source fails early), one at a time.

    A file's frame times come from its frame rate; a camera's from the clock. Use it as a context manager,
    or call close().
    """

    def __init__(self, source: str | int | os.PathLike):
        self.source = os.fspath(source) if isinstance(source, os.PathLike) else source
        self.is_camera = _is_camera(self.source)
        self.name = f"camera {self.source}" if self.is_camera else str(self.source)
        self.capture = open_video(self.source)
        self.fps = self.capture.get(cv2.CAP_PROP_FPS) or 25.0
        self.frame_count = None if self.is_camera else int(self.capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
        self._read, self._start = 0, 0.0

    def __iter__(self) -> Iterator[Frame]:
        """The frames not read yet, numbered from the start of the video."""
        for rgb in frames(self.capture):
            index, self._read = self._read, self._read + 1  # counted before yielding: the caller may stop
            self._start = self._start or time.perf_counter()
            seconds = time.perf_counter() - self._start if self.is_camera else index / self.fps
            yield Frame(rgb, self.name, index, seconds)

    def close(self) -> None:
        self.capture.release()

    def __enter__(self) -> VideoStream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def image_files(inputs: Iterable[str | os.PathLike], recursive: bool = False) -> list[Path]:
    """The image files named by `inputs`, folders expanded (sorted); a missing path or empty folder raises."""
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            found = sorted(p for p in path.glob(pattern)
                           if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
            if not found:
                raise DataError(f"{path}: folder holds no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
            files.extend(found)
        elif not path.exists():
            raise ImageError(f"{path}: no such file or folder")
        else:
            files.append(path)
    return files


def read_images(paths: Iterable[str | os.PathLike], on_error: ErrorHandler | None = None) -> Iterator[Frame]:
    """Each image as a Frame; an unreadable one goes to `on_error` (and is skipped), or raises without it."""
    for item in paths:
        path = Path(item)
        try:
            rgb = load_image(path, mode="rgb")
        except FerkitError as exc:
            if on_error is None:
                raise
            on_error(path, exc)
            continue
        yield Frame(rgb, str(path))


Source = Union[str, int, os.PathLike, VideoStream, Iterable[Union[str, os.PathLike]]]


def stream(source: Source, recursive: bool = False, on_error: ErrorHandler | None = None,
           max_frames: int | None = None) -> Iterator[Frame]:
    """Frames of `source`: an image file, a folder of images (sub-folders too if `recursive`), an iterable of
    image files, a video file (by its extension), a camera index, or an opened VideoStream.

    A video or camera is closed when the stream ends (a VideoStream passed in is left to its owner).
    """
    if isinstance(source, VideoStream):
        yield from _limit(source, max_frames)
    elif isinstance(source, int) or (isinstance(source, (str, os.PathLike)) and _is_video(source)):
        with VideoStream(source) as video:
            yield from _limit(video, max_frames)
    elif isinstance(source, (str, os.PathLike)):
        yield from _limit(read_images(image_files([source], recursive), on_error), max_frames)
    elif isinstance(source, Iterable) and not isinstance(source, (bytes, bytearray, np.ndarray)):
        yield from _limit(read_images(source, on_error), max_frames)
    else:
        raise ConfigError(f"cannot stream from a {type(source).__name__}: give a path, paths or a camera")


def _is_video(source: str | os.PathLike) -> bool:
    text = os.fspath(source)
    return text.isdigit() or Path(text).suffix.lower() in VIDEO_EXTENSIONS


def _limit(items: Iterable[Frame], max_frames: int | None) -> Iterator[Frame]:
    return islice(items, max_frames)  # stops before reading frame `max_frames`: no frame read for nothing


def stream_inference(recognizer: Recognizer, source: Source, every: int = 1, recursive: bool = False,
                     on_error: ErrorHandler | None = None,
                     max_frames: int | None = None) -> Iterator[Results]:
    """Results for every `every`-th frame of `source` (see `stream`); `max_frames` counts frames read."""
    if every < 1:
        raise ConfigError(f"every must be ≥ 1 (got {every})")
    for n, frame in enumerate(stream(source, recursive, on_error, max_frames)):
        if n % every == 0:
            yield recognize_frame(recognizer, frame)


def recognize_frame(recognizer: Recognizer, frame: Frame) -> Results:
    """The recognizer's Results for one frame, saying which frame it was."""
    return replace(recognizer(frame.image, source=frame.source), frame_index=frame.index, time_s=frame.time_s)
