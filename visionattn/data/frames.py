"""Frames from a folder of numbered images or from a video file, read one at a time.

A long video (tens of thousands of frames) must never sit in memory, so everything here is an
iterator: ``iter_frames`` yields ``(frame_index, image)`` pairs with ``image`` a BGR ``uint8``
array of shape ``(H, W, 3)``.

Frame indices: for an image folder the index is the number in the file name (``img46.jpg`` and
``reg_img00046.jpg`` are both frame 46), so indices match the annotations that use them; for a
video it is the 0-based position of the frame.
"""
from __future__ import annotations

import math
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from visionattn.utils import UserError

PathLike = Union[str, os.PathLike]

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp"})
DEFAULT_FPS = 30.0
# Container metadata sometimes reports a timebase (e.g. 90000) instead of a frame rate.
_MAX_PLAUSIBLE_FPS = 1000.0
_LAST_NUMBER = re.compile(r"(\d+)(?!.*\d)")


@dataclass(frozen=True)
class VideoInfo:
    """What ``probe`` learns about a source without decoding all of it.

    ``frame_numbers`` (image folders only) lists the frame index of every image in reading
    order, so ``frame_numbers[i]`` is the index of the ``i``-th frame yielded.
    """

    path: Path
    kind: str  # "images" or "video"
    fps: float
    frame_count: int
    width: int
    height: int
    frame_numbers: Optional[list[int]] = None


@dataclass(frozen=True)
class VideoPart:
    """Which stretch of a source to read, and at what rate an image folder plays.

    ``fps``: frames per second of an image folder (images carry no time; None: the reader's
    default), and the fallback for a video whose container reports no rate. ``start_s``,
    ``end_s``: the frames shown at ``start_s <= t < end_s`` seconds from the first frame
    (``end_s=None``: to the end). Raises ``UserError`` (naming the ``visionattn detect`` flag)
    for a negative start, an end not after the start, or a rate that is not positive.
    """

    fps: Optional[float] = None
    start_s: float = 0.0
    end_s: Optional[float] = None

    def __post_init__(self) -> None:
        if self.fps is not None and not (math.isfinite(self.fps) and 0 < self.fps <= _MAX_PLAUSIBLE_FPS):
            raise UserError(f"--fps {self.fps:g}: must be in (0, {_MAX_PLAUSIBLE_FPS:g}]")
        if not (math.isfinite(self.start_s) and self.start_s >= 0):
            raise UserError(f"--start {self.start_s:g}: must be >= 0 seconds")
        if self.end_s is not None and not self.end_s > self.start_s:
            raise UserError(f"--end {self.end_s:g}: must be after --start ({self.start_s:g} s)")

    @property
    def whole(self) -> bool:
        return self.start_s == 0 and self.end_s is None

    def frames_of(self, info: VideoInfo) -> int:
        """About how many of ``info``'s frames fall in the part (exact for constant rates)."""
        if self.whole or info.fps <= 0:
            return info.frame_count
        first = min(info.frame_count, math.ceil(self.start_s * info.fps - 1e-9))
        last = info.frame_count if self.end_s is None else min(info.frame_count, math.ceil(self.end_s * info.fps - 1e-9))
        return max(0, last - first)


def index_ranges(indices: Sequence[int]) -> list[list[int]]:
    """Compress sorted frame indices into inclusive runs: ``[10..14, 30]`` -> ``[[10, 14], [30, 30]]``."""
    ranges: list[list[int]] = []
    for i in indices:
        if ranges and i == ranges[-1][1] + 1:
            ranges[-1][1] = i
        else:
            ranges.append([i, i])
    return ranges


def expand_ranges(ranges: Sequence[Sequence[int]]) -> list[int]:
    """Inverse of ``index_ranges``."""
    return [i for first, last in ranges for i in range(first, last + 1)]


def probe(source: PathLike, fps: float = DEFAULT_FPS) -> VideoInfo:
    """Describe a video file or image folder.

    ``fps`` is the frame rate of an image folder (images carry none), and the fallback for a
    video whose container reports no plausible rate. Reads one frame to learn the size; counts
    a video's frames by reading only when the container does not say.
    """
    path = _existing(source)
    if path.is_dir():
        images = _list_images(path)
        height, width = _read_image(images[0][1]).shape[:2]
        return VideoInfo(path, "images", float(fps), len(images), width, height, [n for n, _ in images])
    cap = _open_video(path)
    try:
        ok, frame = _read(cap)
        if not ok:
            raise UserError(f"{path}: not a video or corrupt (no frame could be decoded)")
        height, width = frame.shape[:2]
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        if count <= 0:
            count = 1 + _count_remaining(cap)
        return VideoInfo(path, "video", _plausible_fps(cap.get(cv2.CAP_PROP_FPS), fps), count, width, height)
    finally:
        cap.release()


def iter_frames(
    source: PathLike, start: int = 0, stop: Optional[int] = None, step: int = 1
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(frame_index, image)`` with ``image`` BGR ``uint8`` of shape ``(H, W, 3)``.

    ``start``, ``stop`` and ``step`` select frames by position in reading order, like slicing a
    list of all frames (``start=5`` skips the first five, whatever their file numbers), which is
    what resuming an interrupted job needs. The path is checked at call time; frames are
    decoded lazily, one per ``next``.
    """
    if start < 0 or step < 1 or (stop is not None and stop < 0):
        raise ValueError(f"need start >= 0, stop >= 0 and step >= 1, got {start}, {stop}, {step}")
    path = _existing(source)
    if path.is_dir():
        return _iter_images(_list_images(path)[start:stop:step])
    return _iter_video(path, _open_video(path), start, stop, step)


def iter_timed_frames(source: PathLike, fps: float = DEFAULT_FPS, start_s: float = 0.0,
                      end_s: Optional[float] = None) -> Iterator[tuple[int, float, np.ndarray]]:
    """Yield ``(frame_index, seconds, image)``: every frame with its presentation time.

    A video's times come from its decoder (so variable frame rates are honoured), counted from
    its first frame; when the container gives no increasing timestamps, they are
    ``position / fps`` with the container's rate (or ``fps`` when it reports none). Image
    folders carry no times: ``position / fps``.

    ``start_s``, ``end_s``: only the frames with ``start_s <= seconds < end_s`` (``end_s=None``:
    to the end); indices and times stay those of the whole source, so a part of a video is
    numbered as the whole is. A folder's earlier images are skipped unread; a video's earlier
    frames are decoded (its frames are numbered by counting them). Raises ``UserError`` when no
    frame falls in the range.
    """
    if start_s < 0 or (end_s is not None and end_s <= start_s):
        raise ValueError(f"need 0 <= start_s < end_s, got {start_s}, {end_s}")
    path = _existing(source)
    last = None
    if path.is_dir():
        images = _list_images(path)
        first = max(0, math.ceil(start_s * float(fps) - 1e-9))
        for position in range(first, len(images)):
            seconds = position / float(fps)
            if end_s is not None and seconds >= end_s:
                break
            last = seconds
            yield images[position][0], seconds, _read_image(images[position][1])
        if last is None:
            _no_frames_between(path, start_s, end_s, (len(images) - 1) / float(fps))
        return
    cap = _open_video(path)
    rate = _plausible_fps(cap.get(cv2.CAP_PROP_FPS), fps)
    first: Optional[float] = None
    seconds = -math.inf
    fallback_from: Optional[tuple[int, float]] = None  # (position, seconds) where the clock failed
    frames = _iter_video(path, cap, 0, None, 1)
    try:
        for position, frame in frames:
            msec = cap.get(cv2.CAP_PROP_POS_MSEC)
            if fallback_from is None:
                first = msec if first is None else first
                clock = (msec - first) / 1000.0
                if math.isfinite(clock) and (position == 0 or clock > seconds):
                    seconds = clock
                else:  # the decoder's clock stalled or went back: count frames at the rate from here
                    fallback_from = (position, seconds + 1.0 / rate if position else 0.0)
            if fallback_from is not None:
                seconds = fallback_from[1] + (position - fallback_from[0]) / rate
            if seconds < start_s - 1e-9:
                continue
            if end_s is not None and seconds >= end_s:
                break
            last = seconds
            yield position, seconds, frame
    finally:
        frames.close()
    if last is None:
        _no_frames_between(path, start_s, end_s, seconds)


def _no_frames_between(path: Path, start_s: float, end_s: Optional[float], last_s: float) -> None:
    span = f"from {start_s:g} s" + (f" to {end_s:g} s" if end_s is not None else "")
    raise UserError(f"{path}: no frame {span} (its last frame is at {last_s:.2f} s)")


def resample(frames: Iterable[Tuple[int, float, np.ndarray]], fps: float
             ) -> Iterator[Tuple[int, int, float, np.ndarray]]:
    """Nearest-frame resampling onto the grid ``k / fps`` seconds.

    ``frames`` yields ``(source_index, seconds, image)`` with increasing times; yields
    ``(step, source_index, seconds, image)`` for ``step = 0, 1, ...``, each step showing the
    source frame nearest in time (a frame repeats when the source is slower, and is skipped
    when it is faster). The grid starts at the first frame's time (0 for a whole video, the
    part's start for :func:`iter_timed_frames` ``start_s``). Streams: holds one frame.
    """
    step = 0
    origin: Optional[float] = None
    held: Optional[Tuple[int, float, np.ndarray]] = None
    for index, seconds, image in frames:
        if held is not None:
            boundary = (held[1] + seconds) / 2  # grid times before it are nearer the held frame
            while origin + step / fps < boundary:
                yield step, held[0], held[1], held[2]
                step += 1
        else:
            origin = seconds
        held = (index, seconds, image)
    if held is not None:
        # The last frame lasts until one grid period after its time, and is shown at least once.
        while step == 0 or origin + step / fps < held[1] + 0.5 / fps:
            yield step, held[0], held[1], held[2]
            step += 1


def _existing(source: PathLike) -> Path:
    path = Path(source)
    if not path.exists():
        raise UserError(f"{path}: no such video file or image folder")
    return path


def _list_images(folder: Path) -> list[tuple[int, Path]]:
    """Images in ``folder`` sorted by the last number in their names (natural order)."""
    numbered: dict[int, Path] = {}
    for entry in folder.iterdir():
        if entry.suffix.lower() not in IMAGE_EXTENSIONS or not entry.is_file():
            continue
        match = _LAST_NUMBER.search(entry.stem)
        if match is None:
            raise UserError(f"{entry}: image name has no frame number")
        number = int(match.group(1))
        if number in numbered:
            raise UserError(f"{entry}: frame number {number} also used by {numbered[number].name}")
        numbered[number] = entry
    if not numbered:
        raise UserError(f"{folder}: folder has no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
    return sorted(numbered.items())


def _read_image(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise UserError(f"{path}: image cannot be decoded")
    return image


def _iter_images(images: list[tuple[int, Path]]) -> Iterator[tuple[int, np.ndarray]]:
    for number, path in images:
        yield number, _read_image(path)


def _open_video(path: Path) -> cv2.VideoCapture:
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        cap.release()
        raise UserError(f"{path}: not a video or corrupt (OpenCV cannot open it)")
    return cap


def _read(cap: cv2.VideoCapture) -> tuple[bool, Optional[np.ndarray]]:
    # A damaged stream can make the decoder raise instead of returning False; both mean "no frame".
    try:
        return cap.read()
    except cv2.error:
        return False, None


def _grab(cap: cv2.VideoCapture) -> bool:
    try:
        return bool(cap.grab())
    except cv2.error:
        return False


def _count_remaining(cap: cv2.VideoCapture) -> int:
    count = 0
    while _grab(cap):
        count += 1
    return count


def _plausible_fps(reported: float, default: float) -> float:
    if not math.isfinite(reported) or reported <= 0 or reported > _MAX_PLAUSIBLE_FPS:
        return float(default)
    return float(reported)


def _iter_video(
    path: Path, cap: cv2.VideoCapture, start: int, stop: Optional[int], step: int
) -> Iterator[tuple[int, np.ndarray]]:
    expected = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    end = math.inf if stop is None else stop
    position = 0
    try:
        # grab() skips without converting the frame to BGR; seeking by CAP_PROP_POS_FRAMES is
        # not frame-accurate for every codec.
        while position < start and _grab(cap):
            position += 1
        while position < end:
            ok, frame = _read(cap) if (position - start) % step == 0 else (_grab(cap), None)
            if not ok:
                break
            if frame is not None:
                yield position, frame
            position += 1
    finally:
        cap.release()
    if position == 0 and end > 0:
        raise UserError(f"{path}: not a video or corrupt (no frame could be decoded)")
    if position < min(end, expected):
        warnings.warn(
            f"{path}: video ended after {position} of {expected} frames (truncated?)",
            RuntimeWarning,
            stacklevel=2,
        )
