"""The landmark face front end: tracked, aligned faces and their motion, one item per frame.

:class:`LandmarkFrontEnd` drives :class:`visionattn.faces.FaceTracker` (dlib detection,
68 landmarks, alignment, shot cuts, sustained faces) and feeds each aligned face to the
motion stream (:class:`visionattn.features.motion.FacialMotionStream`). It has the interface
the feature cache drives (``process``, ``in_sync``, ``state_dict``, ``report``,
``settings``, ``size``), like the Haar :class:`visionattn.faces.haar.FacePipeline`.
"""
from __future__ import annotations

import collections
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Deque, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from ..faces import FaceTracker
from ..utils.background import OrderedCalls
from .motion import FacialMotionStream

Box = Tuple[float, float, float, float]

# Faces that may wait for their motion (computed on a second thread) before the front end waits
# for them all; also about how often it comes back in sync for a cache to save its state.
MOTION_QUEUE = 32


@dataclass
class FrameFace:
    """One frame: ``image`` the aligned ``(S, S, 3)`` uint8 BGR face crop, all zeros where
    ``present`` is False (no tracked face, or one whose lips or eyes the frame edge cuts:
    nothing there may pass for a face); ``cut``: a shot
    cut lies right before this frame; ``motion`` ``(27,)`` float32 and ``motion_valid`` from the
    motion stream (zeros and False without a face now or ``interval_s`` earlier, or across a
    cut); ``box`` ``(x, y, w, h)`` frame pixels or None."""

    index: int
    image: np.ndarray
    present: bool
    cut: bool
    motion: np.ndarray
    motion_valid: bool
    box: Optional[Box]


def face_spans(present: Sequence[bool], cut_rows: Iterable[int]) -> List[Tuple[int, int]]:
    """Inclusive row ranges with a face on every row and no shot cut inside (a cut at row ``r``
    lies between rows ``r - 1`` and ``r``)."""
    cuts = set(int(r) for r in cut_rows)
    spans: List[Tuple[int, int]] = []
    start = None
    for row, here in enumerate(list(present) + [False]):
        if start is not None and (not here or row in cuts):
            spans.append((start, row - 1))
            start = None
        if here and start is None:
            start = row
    return spans


class LandmarkFrontEnd:
    """Frames in, one :class:`FrameFace` per frame out, in order (frames may be held back while a
    new face is being confirmed; see :class:`~visionattn.faces.FaceTracker`).

    ``fps`` is the rate of the frames given (the motion stream's interval is in seconds).
    """

    def __init__(self, size: int = 112, detect_every: int = 5, fps: float = 30.0,
                 motion_interval_s: float = 0.2, face: str = "largest") -> None:
        self.size = size
        self.tracker = FaceTracker(size=size, detect_every=detect_every, face=face)
        self.motion = FacialMotionStream(fps=fps, interval_s=motion_interval_s)
        self._pushed = 0  # the motion stream counts frames, whatever their numbers (folders have gaps)
        self._blank = np.zeros((size, size, 3), np.uint8)
        self._waiting: Deque[Future] = collections.deque()  # frames whose motion is being computed

    @property
    def report(self):
        return self.tracker.report

    @property
    def in_sync(self) -> bool:
        return self.tracker.in_sync and not self._waiting

    def settings(self) -> Dict[str, Any]:
        return {"tracker": self.tracker.settings(), "motion": self.motion.settings()}

    def process(self, frames: Iterable[Tuple[int, np.ndarray]]) -> Iterator[FrameFace]:
        """One :class:`FrameFace` per frame, in order.

        The motion stream runs on a second thread while the tracker goes on with the next frames
        (OpenCV's optical flow releases the GIL, dlib does not): up to ``MOTION_QUEUE`` faces wait
        for their motion, and all of them are waited for, which brings the front end back
        ``in_sync``, as soon as that many are waiting while the tracker holds nothing back."""
        waiting = self._waiting
        try:
            # depth: never reached, the faces are handed on first
            with OrderedCalls(depth=MOTION_QUEUE + 1) as motion:
                for obs in self.tracker.process(frames):
                    waiting.append(motion.submit(self._face, self._pushed, obs))
                    self._pushed += 1
                    if len(waiting) >= MOTION_QUEUE:
                        drain = self.tracker.in_sync
                        while waiting and (drain or len(waiting) >= MOTION_QUEUE):
                            yield waiting.popleft().result()
                while waiting:
                    yield waiting.popleft().result()
        finally:
            waiting.clear()

    def _face(self, pushed: int, obs) -> FrameFace:
        # A face the frame edge cuts is tracked but not read: the appearance network reads a cut
        # mouth as negative, and the motion of landmarks placed past the edge is guessed.
        present = obs.has_face and obs.in_view
        grey = cv2.cvtColor(obs.aligned, cv2.COLOR_BGR2GRAY) if present else None
        motion, valid = self.motion.push(pushed, grey, obs.aligned_landmarks if present else None, obs.cut)
        return FrameFace(obs.index, obs.aligned if present else self._blank, present, obs.cut,
                         motion, bool(valid), obs.box if present else None)

    def state_dict(self) -> Dict[str, Any]:
        if not self.in_sync:
            raise RuntimeError("front end holds frames back; save its state only while in_sync")
        return {"tracker": self.tracker.state_dict(), "motion": self.motion.state_dict(), "pushed": self._pushed}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.tracker.load_state_dict(state["tracker"])
        self.motion.load_state_dict(state["motion"])
        self._pushed = int(state["pushed"])
