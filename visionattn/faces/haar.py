"""The Haar front end: face crops for every frame, with OpenCV only (Haar cascade, no model download).

The second face front end, beside the landmark one (:mod:`visionattn.features.front_end`): the
``haar`` feature recipe (:class:`visionattn.features.settings.FeatureSettings`) uses it.

``FacePipeline.process`` turns an iterator of ``(index, frame)`` into one ``FaceCrop`` per frame,
in order: detect the largest frontal face, smooth the box over time, enlarge it by a margin,
make it square and cut a ``size x size`` crop (black padding where the square leaves the image).

Policy for frames without a face:

* after a face has been seen, a miss keeps the last smoothed box (``detected=False``);
* frames before the first face are held back, up to ``max_pending`` of them, and cropped with
  the first box found, since the face is most likely already there;
* if no face appears within ``max_pending`` frames (or before the video ends), the held frames
  and every further frame up to the first face are cropped with a centred square of side
  ``min(H, W)``; holding more would keep an unbounded number of full frames in memory.

All such frames are listed in the ``FaceReport`` (``missing``; ``centred`` for the fallback).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Optional, Protocol

import cv2
import numpy as np

from ..data.frames import expand_ranges, index_ranges
from ..utils import UserError

Box = tuple[float, float, float, float]
"""``(x, y, w, h)`` in pixels of the original frame; ``x, y`` is the top-left corner."""

CASCADE_FILE = "haarcascade_frontalface_default.xml"


class Detector(Protocol):
    def detect(self, frame_bgr: np.ndarray) -> Optional[Box]: ...


def _cascade_path() -> str:
    folder = getattr(getattr(cv2, "data", None), "haarcascades", None)
    path = os.path.join(folder, CASCADE_FILE) if folder else None
    if path is None or not os.path.isfile(path):
        raise UserError(
            f"{CASCADE_FILE}: Haar cascade not found in cv2.data.haarcascades; the face pipeline "
            "needs opencv-python 4.x, which ships the cascades (OpenCV 5 does not)"
        )
    return path


class FaceDetector:
    """The most strongly supported frontal face in a frame, found by OpenCV's Haar cascade.

    Detection runs on a grey copy shrunk to ``detect_width`` pixels wide: the cascade's cost
    grows with the pixel count and faces in expression videos are large. ``min_face`` is the
    smallest face side accepted, as a fraction of the shorter image side, which rejects most
    small false positives in the background.
    """

    def __init__(
        self,
        detect_width: int = 320,
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
        min_face: float = 0.1,
    ) -> None:
        path = _cascade_path()
        self._cascade = cv2.CascadeClassifier(path)
        if self._cascade.empty():
            raise UserError(f"{path}: Haar cascade cannot be loaded; reinstall opencv-python 4.x")
        self.detect_width = detect_width
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_face = min_face

    def settings(self) -> dict[str, Any]:
        return {
            "cascade": CASCADE_FILE,
            "detect_width": self.detect_width,
            "scale_factor": self.scale_factor,
            "min_neighbors": self.min_neighbors,
            "min_face": self.min_face,
        }

    def detect(self, frame_bgr: np.ndarray) -> Optional[Box]:
        """Best-supported face in ``frame_bgr`` (``(H, W, 3)`` uint8) as ``(x, y, w, h)``, or None."""
        grey = frame_bgr if frame_bgr.ndim == 2 else cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY)
        height, width = grey.shape
        scale = min(1.0, self.detect_width / width)
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
        # No histogram equalisation: it raises false positives on textured background (it
        # finds a "face" on the shuttle in skimage's astronaut photo).
        # 24 px is the cascade's own window; nothing smaller can be detected anyway.
        side = max(24, int(self.min_face * min(grey.shape)))
        faces, neighbours = self._cascade.detectMultiScale2(
            grey, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, minSize=(side, side)
        )
        if len(faces) == 0:
            return None
        # The best-supported detection, not the largest: a textured background (the shuttle in
        # skimage's astronaut photo) can give a larger false face with fewer neighbours
        # (about 6-8 against 18 for the real face).
        best = max(range(len(faces)), key=lambda i: (int(neighbours[i]), int(faces[i][2]) * int(faces[i][3])))
        x, y, w, h = (float(v) / scale for v in faces[best])
        return (x, y, w, h)


class BoxSmoother:
    """Exponential moving average of a box's centre and size over frames.

    ``alpha`` is the weight of a new detection (1 = no smoothing). A detection whose centre moves
    by more than ``max_jump`` times the box side, or whose size changes by more than that
    fraction, is rejected as an outlier (a false positive for one frame); if the next detection
    agrees with the rejected one, the face really moved (a cut, a quick turn) and the box jumps
    there without smoothing.
    """

    def __init__(self, alpha: float = 0.4, max_jump: float = 0.5) -> None:
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        self.alpha = alpha
        self.max_jump = max_jump
        self._state: Optional[np.ndarray] = None  # (cx, cy, w, h)
        self._rejected: Optional[np.ndarray] = None  # the previous frame's outlier, if any

    @property
    def box(self) -> Optional[Box]:
        """The smoothed box, or None before the first detection."""
        if self._state is None:
            return None
        cx, cy, w, h = (float(v) for v in self._state)
        return (cx - w / 2, cy - h / 2, w, h)

    def update(self, detection: Optional[Box]) -> bool:
        """Fold in one frame's detection; True if it was accepted (None and outliers are not)."""
        rejected, self._rejected = self._rejected, None
        if detection is None:
            return False
        x, y, w, h = detection
        new = np.array([x + w / 2, y + h / 2, w, h], dtype=np.float64)
        if self._state is None or (rejected is not None and not self._jumps(rejected, new)):
            self._state = new
            return True
        if self._jumps(self._state, new):
            self._rejected = new
            return False
        self._state = self.alpha * new + (1.0 - self.alpha) * self._state
        return True

    def _jumps(self, ref: np.ndarray, new: np.ndarray) -> bool:
        side = max(ref[2], ref[3])
        moved = float(np.hypot(*(new[:2] - ref[:2])))
        resized = max(new[2] / ref[2], ref[2] / new[2], new[3] / ref[3], ref[3] / new[3])
        return moved > self.max_jump * side or resized > 1.0 + self.max_jump

    def state_dict(self) -> dict[str, Any]:
        return {
            "state": None if self._state is None else self._state.tolist(),
            "rejected": None if self._rejected is None else self._rejected.tolist(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._state = None if state["state"] is None else np.asarray(state["state"], np.float64)
        self._rejected = None if state["rejected"] is None else np.asarray(state["rejected"], np.float64)


@dataclass
class FaceCrop:
    """One frame's face: ``image`` is BGR uint8 ``(size, size, 3)``; ``box`` is the square
    ``(x, y, side, side)`` it was cut from, in original frame pixels (it may extend past the
    border, where the crop is black); ``detected`` tells whether the latest detection run (on
    this frame, or on the last scheduled one when ``detect_every > 1``) accepted a face, so it is
    False wherever the box was carried over."""

    index: int
    image: np.ndarray
    box: Box
    detected: bool


@dataclass
class FaceReport:
    """What the pipeline saw: ``missing`` lists frame indices with no accepted detection
    (carried, first-box and centred frames alike); ``centred`` those cropped with the centred
    fallback box because no face had been found yet."""

    frames_seen: int = 0
    missing: list[int] = field(default_factory=list)
    centred: list[int] = field(default_factory=list)
    first_face_index: Optional[int] = None

    @property
    def face_found(self) -> bool:
        return self.first_face_index is not None

    @property
    def missing_ranges(self) -> list[list[int]]:
        return index_ranges(self.missing)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with index lists as inclusive ranges to stay small on long videos."""
        return {
            "frames_seen": self.frames_seen,
            "face_found": self.face_found,
            "first_face_index": self.first_face_index,
            "missing_count": len(self.missing),
            "missing_ranges": self.missing_ranges,
            "centred_ranges": index_ranges(self.centred),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "FaceReport":
        return cls(
            frames_seen=data["frames_seen"],
            missing=expand_ranges(data["missing_ranges"]),
            centred=expand_ranges(data["centred_ranges"]),
            first_face_index=data["first_face_index"],
        )


class FacePipeline:
    """Frames in, one square face crop per frame out (see the module docstring for misses).

    ``margin`` is the fraction of the face box side added on each side before squaring;
    ``smoothing`` the weight of the past in the box's moving average (0 = none);
    ``detect_every`` runs the detector on every n-th frame and reuses the box in between.
    State (smoothed box, report) persists across ``process`` calls, so use one pipeline per
    video; it can be saved with ``state_dict`` whenever ``in_sync`` holds, to resume an
    interrupted run exactly.
    """

    def __init__(
        self,
        size: int = 112,
        margin: float = 0.2,
        detect_every: int = 1,
        smoothing: float = 0.6,
        detector: Optional[Detector] = None,
        max_pending: int = 30,
        max_jump: float = 0.5,
    ) -> None:
        if size < 1 or detect_every < 1 or margin < 0 or max_pending < 0 or not 0 <= smoothing < 1:
            raise ValueError(
                "need size >= 1, detect_every >= 1, margin >= 0, max_pending >= 0, 0 <= smoothing < 1"
            )
        self.size = size
        self.margin = margin
        self.detect_every = detect_every
        self.smoothing = smoothing
        self.max_pending = max_pending
        self.max_jump = max_jump
        self.detector: Detector = detector if detector is not None else FaceDetector()
        self.smoother = BoxSmoother(alpha=1.0 - smoothing, max_jump=max_jump)
        self.report = FaceReport()
        self._pending: list[tuple[int, np.ndarray]] = []
        self._centring = False  # no face within max_pending frames: centred box until one appears
        self._last_found = False
        self._emitted = 0

    def settings(self) -> dict[str, Any]:
        """Everything that changes the crops; use it as (part of) a cache's settings."""
        detector = self.detector
        return {
            "size": self.size,
            "margin": self.margin,
            "detect_every": self.detect_every,
            "smoothing": self.smoothing,
            "max_pending": self.max_pending,
            "max_jump": self.max_jump,
            "detector": detector.settings() if isinstance(detector, FaceDetector) else type(detector).__qualname__,
        }

    @property
    def in_sync(self) -> bool:
        """True when every frame taken in has been yielded, so ``state_dict`` matches the output."""
        return self._emitted == self.report.frames_seen

    def process(self, frames: Iterable[tuple[int, np.ndarray]]) -> Iterator[FaceCrop]:
        """Yield a ``FaceCrop`` per ``(index, frame)``, in order; the end of ``frames`` is taken
        as the end of the video (frames still held back are then cropped centred)."""
        for index, frame in frames:
            found = self._observe(index, frame)
            if self.smoother.box is None:
                self._pending.append((index, frame))
                self._centring = self._centring or len(self._pending) > self.max_pending
                if self._centring:
                    yield from self._release_pending()
                continue
            yield from self._release_pending()
            yield self._emit(index, frame, self._face_square(), found)
        if self._pending:
            self._centring = True
            yield from self._release_pending()

    def _observe(self, index: int, frame: np.ndarray) -> bool:
        """Detect (on schedule), update the smoother and the report; True if a face was accepted."""
        if self.report.frames_seen % self.detect_every == 0:
            self._last_found = self.smoother.update(self.detector.detect(frame))
        self.report.frames_seen += 1
        if not self._last_found:
            self.report.missing.append(index)
        elif self.report.first_face_index is None:
            self.report.first_face_index = index
        return self._last_found

    def _release_pending(self) -> Iterator[FaceCrop]:
        while self._pending:
            index, frame = self._pending.pop(0)
            if self._centring:
                self.report.centred.append(index)
                yield self._emit(index, frame, _centred_square(frame), False)
            else:
                yield self._emit(index, frame, self._face_square(), False)

    def _emit(self, index: int, frame: np.ndarray, square: tuple[int, int, int], detected: bool) -> FaceCrop:
        self._emitted += 1
        x0, y0, side = square
        image = crop_square(frame, x0, y0, side, self.size)
        return FaceCrop(index, image, (float(x0), float(y0), float(side), float(side)), detected)

    def _face_square(self) -> tuple[int, int, int]:
        """The smoothed box grown by ``margin`` on each side and squared on its longer side."""
        x, y, w, h = self.smoother.box  # type: ignore[misc]  # only called once a face is known
        side = max(1, round(max(w, h) * (1.0 + 2.0 * self.margin)))
        return round(x + w / 2 - side / 2), round(y + h / 2 - side / 2), side

    def state_dict(self) -> dict[str, Any]:
        """JSON-ready state; valid only while ``in_sync`` (no frames held back)."""
        if not self.in_sync:
            raise RuntimeError("pipeline holds frames back; save its state only while in_sync")
        return {
            "report": self.report.to_dict(),
            "smoother": self.smoother.state_dict(),
            "centring": self._centring,
            "last_found": self._last_found,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.report = FaceReport.from_dict(state["report"])
        self.smoother.load_state_dict(state["smoother"])
        self._centring = state["centring"]
        self._last_found = state["last_found"]
        self._pending = []
        self._emitted = self.report.frames_seen


def _centred_square(frame: np.ndarray) -> tuple[int, int, int]:
    height, width = frame.shape[:2]
    side = min(height, width)
    return (width - side) // 2, (height - side) // 2, side


def crop_square(frame: np.ndarray, x0: int, y0: int, side: int, size: int) -> np.ndarray:
    """Cut the square ``[y0, y0+side) x [x0, x0+side)`` from ``frame`` (``(H, W, 3)``), black
    where it leaves the image, and resize it to ``(size, size, 3)``.

    Padding rather than shifting or shrinking the square keeps the face centred and at the same
    scale near the border.
    """
    height, width = frame.shape[:2]
    sx0, sy0 = max(x0, 0), max(y0, 0)
    sx1, sy1 = min(x0 + side, width), min(y0 + side, height)
    if (sx0, sy0, sx1, sy1) == (x0, y0, x0 + side, y0 + side):
        square = frame[y0 : y0 + side, x0 : x0 + side]
    else:
        square = np.zeros((side, side) + frame.shape[2:], dtype=frame.dtype)
        if sx1 > sx0 and sy1 > sy0:
            square[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = frame[sy0:sy1, sx0:sx1]
    # INTER_AREA averages when shrinking (no aliasing); it degrades to nearest when enlarging.
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(square, (size, size), interpolation=interpolation)
