"""A one-picture summary of what ``visionattn detect`` found in a video.

The picture is a horizontal timeline (seconds from the start of the video on the x axis) with
two lanes, ``macro`` above ``micro``, one bar per detected interval coloured by its emotion.
Stretches where no face was detected are shaded light grey, since nothing there could be found.
"""
from __future__ import annotations

import os
from typing import Dict, List, Optional, Sequence, Tuple, Union

import math

# An explicit Agg canvas on a bare Figure: works headless and leaves pyplot's global state
# (and whatever backend the caller chose) alone.
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, MultipleLocator

from ..utils import atomic_path
from .result import VideoResult

PathLike = Union[str, os.PathLike]

# Okabe-Ito palette: distinguishable with the common colour-vision deficiencies. The annotated
# video uses the same colours (see ``emotion_bgr``) so the two outputs read alike.
EMOTION_COLORS: Dict[str, str] = {
    "negative": "#D55E00",  # vermillion
    "positive": "#009E73",  # bluish green
    "surprise": "#0072B2",  # blue
    "others": "#CC79A7",  # reddish purple
}
UNKNOWN_COLOR = "#7F7F7F"
NO_FACE_COLOR = "#D9D9D9"

FIGSIZE_IN = (12.0, 3.2)
DPI = 120
# Axes placement in figure fractions (left, bottom, width, height), fixed rather than computed
# by a layout engine so that a time maps to the same pixel column in every picture (and tests
# can find it). The right margin holds the legend.
AXES_RECT = (0.06, 0.17, 0.80, 0.64)
# A 0.3 s micro-expression in an hour-long video would be far below one pixel wide.
MIN_BAR_FRACTION = 0.0025
# Score labels need about this many pixels; narrower bars show the score only through opacity.
_MIN_TEXT_PX = 26.0
_LANES: Tuple[str, ...] = ("micro", "macro")  # bottom to top
_BAR_HEIGHT = 0.56
_LONG_VIDEO_S = 90.0


def emotion_color(emotion: str) -> str:
    """Hex colour (``#RRGGBB``) of an emotion name; grey for names outside ``EMOTION_COLORS``."""
    return EMOTION_COLORS.get(emotion, UNKNOWN_COLOR)


def emotion_bgr(emotion: str) -> Tuple[int, int, int]:
    """``emotion_color`` as an OpenCV ``(B, G, R)`` tuple of ints in [0, 255]."""
    h = emotion_color(emotion).lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return b, g, r


def format_clock(seconds: float) -> str:
    """``75.2`` -> ``"1:15"``; ``3725`` -> ``"1:02:05"`` (rounded down to whole seconds)."""
    total = int(max(seconds, 0.0))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def time_extent(result: VideoResult) -> float:
    """Right end of the time axis in seconds: the video's duration, stretched to cover any
    interval ending later (decoder timestamps can run past a container's stated duration)."""
    ends = [float(result.duration_s or 0.0)]
    ends.extend(i.offset_s for i in result.intervals)
    if result.fps and result.fps > 0 and result.frame_count:
        ends.append(result.frame_count / result.fps)
    # A zero-length axis cannot be drawn.
    return max(max(ends), 1e-3) if any(e > 0 for e in ends) else 1.0


def timeline_figure(result: VideoResult) -> Figure:
    """Build the timeline figure (``FIGSIZE_IN`` inches at ``DPI``, i.e. 1440 x 384 pixels).

    The axes occupy ``AXES_RECT`` of the figure and the x axis runs from 0 to
    ``time_extent(result)`` seconds, so time ``t`` lands on pixel column
    ``(AXES_RECT[0] + AXES_RECT[2] * t / time_extent(result)) * 1440``.
    """
    fig = Figure(figsize=FIGSIZE_IN, dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_axes(AXES_RECT)
    x_max = time_extent(result)
    ax.set_xlim(0.0, x_max)
    ax.set_ylim(-0.5, len(_LANES) - 0.5 + 0.25)  # headroom above the top lane for score text
    ax.set_yticks(range(len(_LANES)))
    ax.set_yticklabels(_LANES)
    for y in range(len(_LANES) - 1):
        ax.axhline(y + 0.5, color="#BBBBBB", linewidth=0.6, zorder=1)
    _format_time_axis(ax, x_max)

    has_no_face = _shade_no_face(ax, result)
    px_per_s = FIGSIZE_IN[0] * DPI * AXES_RECT[2] / x_max
    unknown = _draw_bars(ax, result, x_max, px_per_s)

    if not result.face_found:
        _centre_note(ax, "no face found")
    elif not result.intervals:
        _centre_note(ax, "no expressions detected")

    handles: List[Patch] = [Patch(facecolor=c, edgecolor=c, label=e) for e, c in EMOTION_COLORS.items()]
    if unknown:
        handles.append(Patch(facecolor=UNKNOWN_COLOR, edgecolor=UNKNOWN_COLOR, label="other: " + ", ".join(unknown)))
    if has_no_face:
        handles.append(Patch(facecolor=NO_FACE_COLOR, edgecolor="#AAAAAA", label="no face"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=8,
              title="emotion", title_fontsize=8)
    ax.set_title(_title(result), fontsize=10, loc="left")
    return fig


def draw_timeline(result: VideoResult, path: PathLike) -> None:
    """Write the timeline of ``result`` as a 1440 x 384 PNG at ``path``, atomically."""
    fig = timeline_figure(result)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)


def _format_time_axis(ax, x_max: float) -> None:
    if x_max <= _LONG_VIDEO_S:
        ax.set_xlabel("time (s)", fontsize=9)
        return
    # Minutes read better than thousands of seconds; choose a step giving at most ~12 ticks.
    steps = (15, 30, 60, 120, 300, 600, 900, 1800, 3600)
    step = next((s for s in steps if x_max / s <= 12), 3600 * math.ceil(x_max / (12 * 3600)))
    ax.xaxis.set_major_locator(MultipleLocator(step))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: format_clock(v)))
    ax.set_xlabel("time (h:mm:ss)" if x_max >= 3600 else "time (m:ss)", fontsize=9)


def _frame_seconds(result: VideoResult) -> Optional[float]:
    """Seconds per source frame, or None when neither the rate nor the duration tells."""
    if result.fps and result.fps > 0:
        return 1.0 / result.fps
    if result.frame_count and result.duration_s:
        return result.duration_s / result.frame_count
    return None


def _shade_no_face(ax, result: VideoResult) -> bool:
    per_frame = _frame_seconds(result)
    if per_frame is None or not result.frames_without_face:
        return False
    for first, last in result.frames_without_face:
        # Frame ``last`` lasts until the next frame starts, hence ``last + 1``.
        ax.axvspan(first * per_frame, (last + 1) * per_frame, color=NO_FACE_COLOR, alpha=0.7,
                   linewidth=0, zorder=0)
    return True


def _draw_bars(ax, result: VideoResult, x_max: float, px_per_s: float) -> List[str]:
    """Draw every interval; return the emotion names that fell back to the grey colour."""
    min_width = MIN_BAR_FRACTION * x_max
    unknown: List[str] = []
    # Right edge (seconds) of the last score label per lane, to keep labels from overlapping.
    text_end: Dict[str, float] = {lane: -float("inf") for lane in _LANES}
    for interval in sorted(result.intervals, key=lambda i: i.onset_s):
        lane = interval.type if interval.type in _LANES else "macro"
        y = _LANES.index(lane)
        start, width = _bar_span(interval.onset_s, interval.offset_s, min_width)
        color = emotion_color(interval.emotion)
        if interval.emotion not in EMOTION_COLORS and interval.emotion not in unknown:
            unknown.append(interval.emotion)
        score = min(max(float(interval.score), 0.0), 1.0)
        # Opacity carries the score for bars too narrow for a label; the full-strength edge
        # keeps faint (low-score) bars findable.
        ax.barh(y, width, left=start, height=_BAR_HEIGHT, color=color, alpha=0.3 + 0.7 * score,
                linewidth=0, zorder=2)
        ax.barh(y, width, left=start, height=_BAR_HEIGHT, fill=False, edgecolor=color, linewidth=0.8,
                zorder=3)
        centre = start + width / 2
        half_text_s = _MIN_TEXT_PX / 2 / px_per_s
        if width * px_per_s >= _MIN_TEXT_PX and centre - half_text_s > text_end[lane]:
            ax.text(centre, y + _BAR_HEIGHT / 2 + 0.03, f"{score:.2f}", ha="center", va="bottom",
                    fontsize=7, color="#333333", zorder=4)
            text_end[lane] = centre + half_text_s
    return unknown


def _bar_span(onset_s: float, offset_s: float, min_width: float) -> Tuple[float, float]:
    """``(left, width)`` in seconds, widened about its centre to at least ``min_width``."""
    start, end = float(onset_s), max(float(offset_s), float(onset_s))
    if end - start >= min_width:
        return start, end - start
    centre = (start + end) / 2
    return max(centre - min_width / 2, 0.0), min_width


def _centre_note(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=14,
            color="#555555", zorder=5,
            bbox=dict(boxstyle="round,pad=0.4", facecolor="white", edgecolor="#BBBBBB", alpha=0.9))


def _title(result: VideoResult) -> str:
    name = result.name
    if len(name) > 60:
        name = name[:57] + "..."
    counts = _count_types(result.intervals)
    duration = float(result.duration_s or 0.0)
    return (f"{name}  |  {format_clock(duration)} ({duration:.1f} s)  |  "
            f"{counts.get('macro', 0)} macro, {counts.get('micro', 0)} micro  |  "
            "thresholds " + ", ".join(f"{k} {v:.2f}" for k, v in result.threshold.items()))


def _count_types(intervals: Sequence) -> Dict[str, int]:
    counts: Dict[str, int] = {}
    for interval in intervals:
        counts[interval.type] = counts.get(interval.type, 0) + 1
    return counts
