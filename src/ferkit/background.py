"""Overlap a loop's reading and writing with its work: one background thread each side, bounded queues.

    with ReadAhead(frames, size=4) as ahead, WriteBehind(write, size=4) as behind:
        for frame in ahead:               # decoded by a background thread while this one works
            behind.submit(frame, work(frame))   # written by another background thread

OpenCV's decoding and encoding, YuNet and ONNX Runtime release the GIL, so on two cores a video's decode,
detect + classify and draw + encode run at the same time. At most `size` items wait in each queue, so
memory does not grow with the length of the stream. An error in a background thread is raised in the
caller's thread (by the next `submit` or at the end); leaving either block early stops its thread
before the block ends, so whatever it reads from or writes to can be closed safely afterwards.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")
_END = object()
_POLL_S = 0.05  # how often a blocked thread checks whether it should stop


class _Failure:
    def __init__(self, error: BaseException):
        self.error = error


def _put(slots: queue.Queue, item: Any, stop: threading.Event) -> bool:
    """Put `item`, waiting for room unless `stop` is set first; whether it went in."""
    while not stop.is_set():
        try:
            slots.put(item, timeout=_POLL_S)
            return True
        except queue.Full:
            continue
    return False


class ReadAhead(Generic[T]):
    """Iterate `items` in a background thread, keeping up to `size` of them ready for the caller."""

    def __init__(self, items: Iterable[T], size: int = 4):
        self._slots: queue.Queue = queue.Queue(max(1, size))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, args=(items,), daemon=True,
                                        name="ferkit-read-ahead")
        self._thread.start()

    def _produce(self, items: Iterable[T]) -> None:
        try:
            for item in items:
                if not _put(self._slots, item, self._stop):
                    return
            _put(self._slots, _END, self._stop)
        except BaseException as error:  # handed to the caller's thread, raised there
            _put(self._slots, _Failure(error), self._stop)

    def __iter__(self) -> Iterator[T]:
        while True:
            item = self._slots.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item

    def close(self) -> None:
        """Stop the background thread and wait for it (it finishes the item it is reading)."""
        self._stop.set()
        self._thread.join()

    def __enter__(self) -> ReadAhead[T]:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class WriteBehind:
    """Call `consume(*args)` for each `submit(*args)` in a background thread, in order, at most `size` behind.

    The first error `consume` raises is raised by the next `submit` or by `close`; the calls after it
    are dropped.
    """

    def __init__(self, consume: Callable[..., None], size: int = 4):
        self._consume = consume
        self._slots: queue.Queue = queue.Queue(max(1, size))
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="ferkit-write-behind")
        self._thread.start()

    def _run(self) -> None:
        while (args := self._slots.get()) is not _END:
            if self._error is None and not self._stop.is_set():
                try:
                    self._consume(*args)
                except BaseException as error:  # raised in the caller's thread
                    self._error = error

    def submit(self, *args: Any) -> None:
        self._raise_error()
        _put(self._slots, args, self._stop)

    def close(self) -> None:
        """Wait until every call submitted is done; raise the first error one of them raised."""
        self._finish()
        self._raise_error()

    def _finish(self) -> None:
        if self._thread.is_alive():
            self._slots.put(_END)  # the thread always drains the queue, so there will be room
            self._thread.join()

    def _raise_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def __enter__(self) -> WriteBehind:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.close()
        else:  # the caller failed: drop what is still queued, keep the caller's error
            self._stop.set()
            self._finish()
