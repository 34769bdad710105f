"""visionattn.utils.background: the stages of a streaming pass overlapped on a second thread."""
from __future__ import annotations

import threading
import time

import pytest

from visionattn.utils.background import OrderedCalls, prefetched


def test_prefetched_yields_everything_in_order_from_another_thread():
    producers = set()

    def items():
        for i in range(50):
            producers.add(threading.get_ident())
            yield i

    assert list(prefetched(items(), depth=3)) == list(range(50))
    assert producers and threading.get_ident() not in producers


def test_prefetched_runs_ahead_while_the_consumer_works():
    made = []

    def items():
        for i in range(6):
            made.append(i)
            yield i

    stream = prefetched(items(), depth=4)
    assert next(stream) == 0
    time.sleep(0.3)  # the consumer is busy; the producer fills the queue meanwhile
    assert len(made) == 6  # the first item, four waiting, one more blocked on the full queue
    assert list(stream) == [1, 2, 3, 4, 5]


def test_prefetched_raises_the_producers_error_where_it_happened():
    def items():
        yield 1
        yield 2
        raise OSError("broken.mp4: decoder failed at frame 2")

    got = []
    with pytest.raises(OSError, match="broken.mp4"):
        for item in prefetched(items()):
            got.append(item)
    assert got == [1, 2]


def test_closing_prefetched_early_stops_the_producer():
    made = []

    def items():
        for i in range(10_000):
            made.append(i)
            yield i

    stream = prefetched(items(), depth=2)
    assert [next(stream) for _ in range(3)] == [0, 1, 2]
    stream.close()
    count = len(made)
    time.sleep(0.3)
    assert len(made) == count < 10  # nothing more is produced once the consumer has gone


def test_ordered_calls_run_one_at_a_time_in_order_beside_the_caller():
    done, running, overlapping = [], [], []

    def work(i):
        running.append(i)
        overlapping.append(len(running))
        time.sleep(0.01)
        done.append(i)
        running.remove(i)

    with OrderedCalls(depth=2) as calls:
        for i in range(20):
            calls.submit(work, i)
        assert len(done) < 20  # submit returned before the calls finished
        assert calls.submit(lambda: 7).result() == 7  # after the twenty, in order
        assert done == list(range(20))
    assert done == list(range(20))
    assert max(overlapping) == 1


def test_ordered_calls_keep_at_most_depth_waiting():
    release = threading.Event()
    started = []

    def work(i):
        started.append(i)
        release.wait(5)

    calls = OrderedCalls(depth=2)
    calls.submit(work, 0)
    calls.submit(work, 1)
    blocked = threading.Thread(target=calls.submit, args=(work, 2))
    blocked.start()
    time.sleep(0.2)
    assert blocked.is_alive()  # two calls wait: the third submit waits for the oldest
    release.set()
    blocked.join(5)
    calls.join()
    calls.close()
    assert started == [0, 1, 2]


def test_ordered_calls_raise_a_calls_error_in_the_caller():
    def fail():
        raise ValueError("row 3: bad value")

    with pytest.raises(ValueError, match="row 3"):
        with OrderedCalls() as calls:
            calls.submit(fail)


def test_an_error_in_the_block_wins_and_waiting_calls_are_dropped():
    done = []

    def work(i):
        time.sleep(0.05)
        done.append(i)

    with pytest.raises(KeyError):
        with OrderedCalls(depth=10) as calls:
            for i in range(10):
                calls.submit(work, i)
            raise KeyError("data.fps")
    assert len(done) < 10
