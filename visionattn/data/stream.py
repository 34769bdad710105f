"""One video -> face -> rows stream, shared by the feature cache and ``visionattn detect``.

Two stages, so that training features and detection features are made the same way:

* :func:`model_rate_frames`: the frames on the model-rate grid ``k / model_fps`` (nearest source
  frame by time, :func:`~visionattn.data.frames.resample`), from a given step (resume) and over a
  :class:`~visionattn.data.frames.VideoPart`;
* :func:`face_batches`: the face front end over those frames, its items cut into batches (only
  where the front end holds nothing back, when its state is saved with each batch) and handed to
  one ordered worker (a network, the writing of rows) that runs beside it
  (:mod:`visionattn.utils.background`).
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator, Optional, Tuple

import numpy as np

from visionattn.data.frames import VideoInfo, VideoPart, iter_timed_frames, resample
from visionattn.utils.background import OrderedCalls, prefetched

StepFrame = Tuple[int, int, float, Optional[np.ndarray]]  # (step, source index, seconds, image)


def rate_differs(info: VideoInfo, model_fps: Optional[float]) -> bool:
    """Whether ``model_fps`` is given and is not the source's rate: its steps are then more or
    fewer than its frames."""
    return model_fps is not None and abs(model_fps - info.fps) > 1e-6


def model_rate_frames(info: VideoInfo, model_fps: Optional[float], part: VideoPart = VideoPart(),
                      start: int = 0, stop: Optional[int] = None,
                      on_decode: Optional[Callable[[int], None]] = None) -> Iterator[StepFrame]:
    """``(step, source_index, seconds, image)`` for the steps ``0 <= step < stop`` of the source
    ``info`` describes (``probe``), ``image`` BGR uint8 ``(H, W, 3)``, None before ``start``.

    Steps are the grid ``k / model_fps`` from the part's first frame, each showing the source frame
    nearest in time, wherever the decoder's times may not be the grid: a rate other than
    ``model_fps``, or a video file (variable-rate videos). A frame folder at ``model_fps`` (or any
    source with ``model_fps=None``) is read as it is, one step per frame. ``part``: the stretch
    ``start_s <= t < end_s`` to read. ``start``: the first step whose image is wanted (resuming):
    earlier steps are still yielded, for their source index and time. ``on_decode``: called with
    each decoded frame's source index (progress, counting).
    """
    frames: Iterable[Tuple[int, float, np.ndarray]] = iter_timed_frames(
        info.path, fps=info.fps, start_s=part.start_s, end_s=part.end_s)
    if on_decode is not None:
        frames = _announced(frames, on_decode)
    if rate_differs(info, model_fps) or (model_fps is not None and info.kind == "video"):
        steps: Iterable[StepFrame] = resample(frames, model_fps)
    else:
        steps = ((step, index, seconds, image) for step, (index, seconds, image) in enumerate(frames))
    for step, index, seconds, image in steps:
        if stop is not None and step >= stop:  # a variable-rate video running longer than its stated count
            break
        yield step, index, seconds, (image if step >= start else None)


def _announced(frames: Iterable[Tuple[int, float, np.ndarray]], on_decode: Callable[[int], None]
               ) -> Iterator[Tuple[int, float, np.ndarray]]:
    for index, seconds, image in frames:
        on_decode(index)
        yield index, seconds, image


def face_batches(pipeline: Any, frames: Iterable[Tuple[int, np.ndarray]], size: int,
                 handle: Callable[..., None], resumable: bool = False,
                 on_item: Optional[Callable[[Any], None]] = None) -> None:
    """Run the face front end ``pipeline`` over ``frames`` (``(index, image)`` pairs, read ahead
    on a thread) and hand its items, in batches of at least ``size``, to ``handle(items)`` on an
    ordered worker thread, the last batch possibly shorter.

    Args:
        pipeline: a face front end (``process``; with ``resumable``, also ``in_sync`` and
            ``state_dict``), e.g. :class:`visionattn.features.front_end.LandmarkFrontEnd`.
        resumable: cut a batch only where the front end holds no frame back (``in_sync``) and
            call ``handle(items, state)`` with its ``state_dict()`` then, so that a job saving
            both can resume exactly there; otherwise cut every ``size`` items.
        on_item: called on the front end's thread with each item as it comes (per-frame records).
    """
    pending: list = []
    # Decoding and ``handle`` run beside the face front end (see utils.background); a batch's
    # state is taken here, when the items it stands for are the ones handed over.
    with OrderedCalls() as worker:
        for item in pipeline.process(prefetched(frames)):
            pending.append(item)
            if on_item is not None:
                on_item(item)
            if len(pending) >= size and (not resumable or pipeline.in_sync):
                worker.submit(handle, pending, *((pipeline.state_dict(),) if resumable else ()))
                pending = []
        if pending:
            worker.submit(handle, pending, *((pipeline.state_dict(),) if resumable else ()))
