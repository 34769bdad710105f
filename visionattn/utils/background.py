"""Overlap the stages of a streaming pass on a background thread.

A video pass is decode -> face front end -> network. OpenCV (decoding, resizing, optical flow)
and torch release Python's GIL while they compute, dlib's face front end does not, so the
front end runs on the calling thread and the other stages beside it:

* :func:`prefetched` reads an iterator (e.g. decoded frames) ahead on its own thread;
* :class:`OrderedCalls` runs calls (e.g. a network on each batch and the writing of its rows)
  one at a time, in the order given, on one thread, while the caller goes on.

Both keep at most ``depth`` items waiting, so memory stays bounded, and re-raise a worker's
error in the calling thread.
"""
from __future__ import annotations

import collections
import queue
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Deque, Iterable, Iterator, TypeVar

T = TypeVar("T")

_DONE = object()


def prefetched(items: Iterable[T], depth: int = 8) -> Iterator[T]:
    """Yield what ``items`` yields, in order, produced up to ``depth`` items ahead on a daemon
    thread. An error raised by ``items`` is raised here, where that item would have come;
    closing this generator early stops the producer at its next item."""
    if depth < 1:
        raise ValueError("depth must be >= 1")
    handoff: "queue.Queue[Any]" = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(value: Any) -> bool:
        while not stop.is_set():
            try:
                handoff.put(value, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((True, item)):
                    return
            put((True, _DONE))
        except BaseException as error:  # handed to the consumer, raised there
            put((False, error))

    worker = threading.Thread(target=produce, name="prefetched", daemon=True)
    worker.start()
    try:
        while True:
            ok, value = handoff.get()
            if not ok:
                raise value
            if value is _DONE:
                return
            yield value
    finally:
        stop.set()
        worker.join()


class OrderedCalls:
    """Run calls one at a time, in submission order, on one background thread.

    ``submit`` returns the call's future at once, unless ``depth`` calls are already waiting: it
    then first waits for the oldest (and re-raises its error). ``join`` waits for all of them. As
    a context manager it joins on exit; when the block itself raised, the calls still running are
    waited for and their errors dropped in favour of the block's.
    """

    def __init__(self, depth: int = 1) -> None:
        if depth < 1:
            raise ValueError("depth must be >= 1")
        self.depth = depth
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ordered-calls")
        self._pending: Deque[Future] = collections.deque()

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Future:
        """Queue ``fn(*args, **kwargs)``; its future, for a caller that wants the result."""
        while self._pending and (self._pending[0].done() or len(self._pending) >= self.depth):
            self._pending.popleft().result()
        future = self._executor.submit(fn, *args, **kwargs)
        self._pending.append(future)
        return future

    def join(self) -> None:
        while self._pending:
            self._pending.popleft().result()

    def close(self, cancel: bool = False) -> None:
        """Stop the thread, after the calls still waiting (or only the one running, ``cancel``)."""
        self._executor.shutdown(wait=True, cancel_futures=cancel)

    def __enter__(self) -> "OrderedCalls":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if exc_type is None:
                self.join()
        finally:
            self.close(cancel=exc_type is not None)
            self._pending.clear()
