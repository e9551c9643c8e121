"""ReadAhead and WriteBehind: the background threads that overlap a video's decoding and encoding."""

from __future__ import annotations

import threading
import time

import pytest

from ferkit.background import ReadAhead, WriteBehind


def test_read_ahead_gives_every_item_in_order_and_stays_bounded():
    produced = []

    def items():
        for n in range(50):
            produced.append(n)
            yield n

    with ReadAhead(items(), size=3) as ahead:
        seen = []
        for n in ahead:
            time.sleep(0.001 if n < 5 else 0)
            assert len(produced) - len(seen) <= 3 + 2  # the queue, plus one item in the producer's hands
            seen.append(n)
    assert seen == list(range(50))


def test_read_ahead_raises_the_producers_error_in_the_callers_thread():
    def items():
        yield 1
        raise ValueError("bad frame")

    with ReadAhead(items()) as ahead, pytest.raises(ValueError, match="bad frame"):
        list(ahead)


def test_leaving_read_ahead_early_stops_its_thread():
    stopped = threading.Event()

    def endless():
        try:
            n = 0
            while True:
                yield n
                n += 1
        finally:
            stopped.set()

    with ReadAhead(endless(), size=2) as ahead:
        for n in ahead:
            if n == 10:
                break
    assert not ahead._thread.is_alive() and stopped.wait(1)  # the source is closed too


def test_write_behind_calls_in_order_and_waits_at_close():
    calls = []
    with WriteBehind(lambda a, b: (time.sleep(0.001), calls.append((a, b))), size=2) as behind:
        for n in range(20):
            behind.submit(n, -n)
    assert calls == [(n, -n) for n in range(20)]


def test_write_behind_raises_the_first_error_and_drops_the_rest():
    calls = []

    def consume(n):
        if n == 3:
            raise OSError("disk full")
        calls.append(n)

    with pytest.raises(OSError, match="disk full"):
        with WriteBehind(consume, size=1) as behind:
            for n in range(100):
                behind.submit(n)
    assert calls == [0, 1, 2]


def test_write_behind_keeps_the_callers_error_and_stops():
    calls = []
    with pytest.raises(KeyError):
        with WriteBehind(lambda n: (time.sleep(0.01), calls.append(n)), size=50) as behind:
            for n in range(50):
                behind.submit(n)
            raise KeyError("caller")
    assert len(calls) < 50 and not behind._thread.is_alive()
