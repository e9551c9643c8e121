"""The inference side of `ferkit serve`: a pool of workers, each with its own `Recognizer`, fed from asyncio.

Every request runs the same code as `ferkit predict`: `load_image` decodes the upload (refusing decompression
bombs and corrupt files with `ImageError`), then a `Recognizer` (same detector, crop framing and classifier)
finds and classifies the faces, and `Results.to_dict` says what it found. So the API, the page and the CLI
give the same answer for the same photo.

Two kinds of pool:

- "thread" (the default): N threads, one Recognizer each; the classifier is loaded once and shared (ONNX
  Runtime sessions and PyTorch modules in inference mode may be called from several threads at once).
  PyTorch and ONNX Runtime release the GIL while they compute, so two threads keep two cores busy.
- "process": N processes, one Recognizer each (the model is loaded once per process). No GIL between
  workers, at the price of one more copy of PyTorch in memory per worker and a slower start.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import io
import multiprocessing
import os
import threading
import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass

from ..errors import ConfigError, ImageError
from ..faces import DEFAULT_DETECTOR

DETECTORS = ("mtcnn", "haar", "yunet")
MAX_CACHED_DETECTORS = 8  # per worker: (detector, min_face_size) pairs asked for by requests


class Busy(Exception):
    """Too many requests are already waiting for a worker."""


@dataclass(frozen=True)
class EngineConfig:
    """What `ferkit serve` loads, and how many workers run it."""

    model: str | None = None
    detector: str = DEFAULT_DETECTOR
    backend: str = "auto"
    device: str = "cpu"
    min_face_size: int | None = None
    tta: str | None = None            # test-time augmentation ("flip"), see `Recognizer`
    workers: int = 2
    pool: str = "thread"              # "thread" or "process"
    threads_per_worker: int | None = 1  # intra-op threads of PyTorch/ONNX Runtime per worker (None: leave)
    max_pixels: int = 40_000_000      # larger images are refused before they are decoded
    max_queue: int = 64               # requests waiting for a worker beyond this get 503

    def __post_init__(self):
        if self.pool not in ("thread", "process"):
            raise ConfigError(f"unknown pool {self.pool!r}; use thread or process")
        if self.workers < 1:
            raise ConfigError(f"workers must be ≥ 1 (got {self.workers})")
        if self.detector not in DETECTORS:
            raise ConfigError(f"unknown face detector {self.detector!r}; "
                              f"choose one of: {', '.join(DETECTORS)}")


# ---------------------------------------------------------------- one worker

class Worker:
    """One Recognizer per (detector, min_face_size) asked for, all sharing one classifier."""

    def __init__(self, config: EngineConfig, classifier=None):
        from ..models.resolver import load_classifier
        from ..models.wrappers import with_tta

        self.config = config
        self.classifier = classifier or with_tta(load_classifier(config.model, device=config.device,
                                                                 backend=config.backend), config.tta)
        self._recognizers: OrderedDict[tuple[str, int | None], object] = OrderedDict()
        self.recognizer(config.detector, config.min_face_size)  # load the detector now, not on a request

    def recognizer(self, detector: str | None, min_face_size: int | None):
        from ..predict import Recognizer

        key = (detector or self.config.detector, min_face_size or self.config.min_face_size)
        if key not in self._recognizers:
            self._recognizers[key] = Recognizer(self.classifier, detector=key[0], min_face_size=key[1])
            while len(self._recognizers) > MAX_CACHED_DETECTORS:
                self._recognizers.popitem(last=False)
        self._recognizers.move_to_end(key)
        return self._recognizers[key]

    def detect(self, data: bytes, name: str, detector: str | None, min_face_size: int | None) -> dict:
        start = time.perf_counter()
        rgb = decode(data, upload_label(name), self.config.max_pixels, mode="rgb")
        decoded = time.perf_counter()
        result = self.recognizer(detector, min_face_size)(rgb, source=name)
        out = result.to_dict(details=True)
        out["timing_ms"]["decode"] = round((decoded - start) * 1000, 2)
        return out

    def classify(self, items: list[tuple[str, bytes]]) -> dict:
        start = time.perf_counter()
        crops = [decode(data, upload_label(name, i, len(items)), self.config.max_pixels, mode="gray")
                 for i, (name, data) in enumerate(items)]
        decoded = time.perf_counter()
        predictions = self.recognizer(None, None).classify(crops)
        return {"predictions": [{"file": name, "label": p.label, "probs": {k: round(float(v), 4)
                                                                          for k, v in p.probs.items()}}
                                for (name, _), p in zip(items, predictions)],
                "timing_ms": {"decode": round((decoded - start) * 1000, 2),
                              "classify": round((time.perf_counter() - decoded) * 1000, 2)}}


def upload_label(filename: str, index: int = 0, count: int = 1) -> str:
    """How error messages name an upload: "upload 'a.jpg'", "upload 2 of 3 'b.png'", "upload"."""
    where = f"upload {index + 1} of {count}" if count > 1 else "upload"
    return f"{where} {filename!r}" if filename else where


def decode(data: bytes, name: str, max_pixels: int, mode: str):
    """`load_image` of an upload, after refusing one whose header claims more than `max_pixels` pixels."""
    from PIL import Image

    from ..data.images import load_image

    if not data:
        raise ImageError(f"{name}: is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as img:  # reads the header only
                width, height = img.size
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(f"{name}: image too large ({exc}); "
                            f"this server's limit is {max_pixels:,} pixels") from None
    except Exception:  # noqa: BLE001 - load_image below says what is wrong in its own words
        width = height = 0
    if width * height > max_pixels:
        raise ImageTooLarge(f"{name}: image too large ({width}×{height} = {width * height:,} pixels); "
                            f"this server's limit is {max_pixels:,} pixels")
    return load_image(data, mode=mode, name=name)


class ImageTooLarge(ImageError):
    """An upload with more pixels than the server accepts (HTTP 413)."""


# ---------------------------------------------------------------- the worker of each thread or process

_local = threading.local()
_process_worker: Worker | None = None


def _limit_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


def _process_init(config: EngineConfig) -> None:
    global _process_worker
    _die_with_parent()
    _limit_threads(config.threads_per_worker)
    _process_worker = Worker(config)


def _die_with_parent() -> None:
    """Linux: this worker gets SIGTERM when the server process dies, even by SIGKILL (no orphans)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _process_call(method: str, *args):
    assert _process_worker is not None
    return getattr(_process_worker, method)(*args)


def _process_ready(_: int = 0) -> int:
    return os.getpid()


# ---------------------------------------------------------------- the pool

@dataclass
class EngineStats:
    requests: int = 0
    busy: int = 0
    timeouts: int = 0


class Engine:
    """Runs `Worker.detect` / `Worker.classify` on a pool, at most `max_queue` requests waiting."""

    def __init__(self, config: EngineConfig | None = None):
        self.config = config = config or EngineConfig()
        from ..models.resolver import load_classifier, resolve
        from ..models.wrappers import with_tta

        self.model = resolve(config.model)
        # Loaded here in any case: the class names and model details for /v1/models, and a bad --model fails
        # before the server listens.
        engine = load_classifier(config.model, device=config.device, backend=config.backend)
        self.classifier = with_tta(engine, config.tta)
        self.stats = EngineStats()
        self._pending = 0
        self._lock = threading.Lock()
        if config.pool == "thread":
            _limit_threads(config.threads_per_worker)
            self._workers: list[Worker] = [Worker(config, self.classifier) for _ in range(config.workers)]
            self._free: list[Worker] = list(self._workers)
            self._executor: cf.Executor = cf.ThreadPoolExecutor(config.workers,
                                                                 thread_name_prefix="ferkit-serve")
        else:
            context = multiprocessing.get_context("spawn")  # fork after PyTorch started its threads can hang
            self._executor = cf.ProcessPoolExecutor(config.workers, mp_context=context,
                                                    initializer=_process_init, initargs=(config,))
            # Start every process and load its model now, so the first requests do not wait for it.
            list(self._executor.map(_process_ready, range(config.workers)))

    @property
    def class_names(self) -> list[str]:
        return list(self.classifier.class_names)

    @property
    def pending(self) -> int:
        return self._pending

    def _thread_call(self, method: str, *args):
        with self._lock:
            worker = self._free.pop()
        try:
            return getattr(worker, method)(*args)
        finally:
            with self._lock:
                self._free.append(worker)

    async def run(self, method: str, *args, timeout: float | None = None) -> dict:
        """`Worker.<method>(*args)` on the pool. Raises Busy, asyncio.TimeoutError or the worker's error."""
        if self._pending >= self.config.max_queue + self.config.workers:
            self.stats.busy += 1
            raise Busy(f"{self._pending} requests are already waiting; try again shortly")
        self._pending += 1
        try:
            if self.config.pool == "thread":
                future = self._executor.submit(self._thread_call, method, *args)
            else:
                future = self._executor.submit(_process_call, method, *args)
            try:
                out = await asyncio.wait_for(asyncio.wrap_future(future), timeout)
            except asyncio.TimeoutError:
                future.cancel()  # not started yet: never runs; running: its answer is dropped
                self.stats.timeouts += 1
                raise
            self.stats.requests += 1
            return out
        finally:
            self._pending -= 1

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
