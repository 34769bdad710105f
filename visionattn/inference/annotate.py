"""A copy of the source video with what ``visionattn detect`` found drawn onto each frame.

Each frame shows the face box (green where a face was detected on that frame, orange where the
box was carried over from another frame), a banner per expression active on that frame
(``MACRO positive 0.87``, coloured by emotion as in the timeline picture) and a clock.
"""
from __future__ import annotations

import bisect
import os
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
from tqdm import tqdm

from ..data.frames import DEFAULT_FPS, iter_timed_frames
from ..data.video_writer import BrowserVideoWriter
from ..utils.console import progress_wanted
from .result import DetectedInterval, VideoResult
from .timeline import emotion_bgr

PathLike = Union[str, os.PathLike]

FACE_COLOR = (0, 200, 0)  # BGR green: face detected on this frame
CARRIED_BOX_COLOR = (0, 140, 255)  # BGR orange: box reused from a frame with a face
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def write_annotated(
    source: PathLike, result: VideoResult, boxes: np.ndarray, path: PathLike, progress: bool = True
) -> None:
    """Write ``source`` with detections drawn on it at ``path``, atomically: an H.264 MP4 that
    browsers play (:class:`~visionattn.data.video_writer.BrowserVideoWriter`), with the source's
    audio when it has some.

    The frames are those the result was made from: all of them, or the stretch
    ``result.part_s`` (``--start/--end``). ``boxes``: float array of shape ``(frames read, 4)``,
    one ``(x, y, w, h)`` face box in pixels per frame read in reading order, NaN rows where no
    box is known; frames beyond its last row get no box. Intervals and
    ``result.frames_without_face`` are in the result's frame numbering (a video file's frames
    from ``result.first_frame``, a folder's own numbers). Frames keep their times (a frame
    folder's at ``result.fps``, 30 when unknown); frame size ``result.width x result.height``.
    Raises ``UserError`` when the video cannot be written; on any error nothing is left at
    ``path`` or beside it.
    """
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    fps = float(result.fps) if result.fps and result.fps > 0 else DEFAULT_FPS
    size = (int(result.width), int(result.height))
    start_s, end_s = _stretch(result)
    frames = iter_timed_frames(source, fps=fps, start_s=start_s, end_s=end_s)
    active = _ActiveIntervals(result.intervals)
    no_face = _RangeSet(result.frames_without_face)
    with BrowserVideoWriter(path, fps, size, audio_from=source, end_s=end_s) as writer:
        with tqdm(total=result.frame_count, unit="frame", disable=not progress_wanted(progress),
                  desc=f"annotate {result.name}") as bar:
            # iter_timed_frames counts a video file's frames from 0, the result from its first_frame
            shift = result.first_frame if Path(source).is_file() else 0
            for position, (index, seconds, frame) in enumerate(frames):
                index += shift
                if (frame.shape[1], frame.shape[0]) != size:
                    frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
                box = boxes[position] if position < len(boxes) else None
                annotate_frame(frame, index, seconds, box, index not in no_face, active.at(index))
                writer.write(frame, seconds)
                bar.update(1)


def _stretch(result: VideoResult) -> Tuple[float, Optional[float]]:
    """``(start_s, end_s)`` to read the frames ``result`` was made from: the part's, or all."""
    if not result.part_s:
        return 0.0, None
    start, end = result.part_s
    return float(start), None if end is None else float(end)


def annotate_frame(
    frame: np.ndarray,
    index: int,
    seconds: float,
    box: Union[np.ndarray, Sequence[float], None],
    face_detected: bool,
    intervals: Sequence[DetectedInterval],
) -> np.ndarray:
    """Draw on ``frame`` (BGR ``uint8``, ``(H, W, 3)``) in place and return it.

    ``box``: ``(x, y, w, h)`` in pixels, or None / any NaN for no box. ``intervals``: the
    expressions active on this frame, one banner each from the top left corner down.
    ``seconds``: time of the frame, shown as ``t=12.3s`` in the bottom left corner.
    """
    height, width = frame.shape[:2]
    scale = _font_scale(width, height)
    thickness = max(1, int(round(scale * 2)))
    box_thickness = thickness + 1  # survives 4:2:0 chroma subsampling on small frames
    if box is not None and np.all(np.isfinite(box)):
        x, y, w, h = (int(round(float(v))) for v in box)
        color = FACE_COLOR if face_detected else CARRIED_BOX_COLOR
        cv2.rectangle(frame, (x, y), (x + w, y + h), color, box_thickness)

    top = 0
    for interval in intervals:
        label = f"{interval.type.upper()} {interval.emotion} {interval.score:.2f}"
        top += _banner(frame, label, (0, top), emotion_bgr(interval.emotion), scale, thickness)

    clock = f"t={seconds:.1f}s"
    (_, th), base = cv2.getTextSize(clock, _FONT, scale, thickness)
    _banner(frame, clock, (0, height - th - base - 2 * max(2, th // 4)), (0, 0, 0), scale, thickness)
    return frame


class _ActiveIntervals:
    """Expressions active at increasing frame indices, found in one sweep over the video."""

    def __init__(self, intervals: Sequence[DetectedInterval]):
        self._pending = sorted(intervals, key=lambda i: (i.onset, i.offset))
        self._next = 0
        self._active: List[DetectedInterval] = []
        self._last = None

    def at(self, index: int) -> List[DetectedInterval]:
        if self._last is not None and index < self._last:  # out of order: start over
            self._next, self._active = 0, []
        self._last = index
        while self._next < len(self._pending) and self._pending[self._next].onset <= index:
            self._active.append(self._pending[self._next])
            self._next += 1
        self._active = [i for i in self._active if i.offset >= index]
        return [i for i in self._active if i.onset <= index]


class _RangeSet:
    """Membership in a union of inclusive ``[first, last]`` integer ranges."""

    def __init__(self, ranges: Sequence[Sequence[int]]):
        merged: List[Tuple[int, int]] = []
        for first, last in sorted((int(a), int(b)) for a, b in ranges):
            if merged and first <= merged[-1][1] + 1:
                merged[-1] = (merged[-1][0], max(merged[-1][1], last))
            else:
                merged.append((first, last))
        self._firsts = [a for a, _ in merged]
        self._lasts = [b for _, b in merged]

    def __contains__(self, index: int) -> bool:
        k = bisect.bisect_right(self._firsts, index) - 1
        return k >= 0 and index <= self._lasts[k]


def _font_scale(width: int, height: int) -> float:
    # Hershey fonts are ~22 px tall at scale 1; aim for text ~1/28 of the shorter side.
    return max(0.3, min(width, height) / 28 / 22)


def _banner(frame: np.ndarray, text: str, corner: Tuple[int, int], color: Tuple[int, int, int],
            scale: float, thickness: int) -> int:
    """Text on a filled box of ``color`` with its top left at ``corner``; returns the box height."""
    (tw, th), base = cv2.getTextSize(text, _FONT, scale, thickness)
    pad = max(2, th // 4)
    x, y = corner
    box_h = th + base + 2 * pad
    cv2.rectangle(frame, (x, y), (x + tw + 2 * pad, y + box_h), color, cv2.FILLED)
    # Rec. 601 luma: dark text on light banners, white on dark ones.
    b, g, r = color
    ink = (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 140 else (255, 255, 255)
    cv2.putText(frame, text, (x + pad, y + pad + th), _FONT, scale, ink, thickness, cv2.LINE_AA)
    return box_h + 1
