"""A one-picture summary of what ``visionattn detect`` found in a video, and why.

Panels stacked on one time axis (seconds from the start of the video), top to bottom:

1. ``score`` (with signals): the per-step quantity the detector thresholded (FEDN's score or the
   flow spotter's motion energy) and its threshold(s) as dashed lines;
2. ``emotions`` (with signals that have them): the appearance network's emotion probabilities
   as a stacked area, coloured as the bars below;
3. ``intervals``: two lanes, ``macro`` above ``micro``, one bar per detected interval coloured
   by its emotion; with ground truth each lane gets a ``GT`` lane below it holding the
   annotated intervals as outlined bars.

Across all panels, stretches where no face was detected are shaded light grey and shot cuts are
vertical lines. Without signals or ground truth the picture is the intervals panel alone.
"""
from __future__ import annotations

import math
import os
import textwrap
from typing import Dict, List, Optional, Sequence, Tuple, Union

# An explicit Agg canvas on a bare Figure: works headless and leaves pyplot's global state
# (and whatever backend the caller chose) alone.
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, MultipleLocator
import numpy as np

from ..data.annotations import EMOTION4_MAP
from ..evaluation import Interval
from ..utils import atomic_path
from .result import VideoResult
from .signals import TimelineSignals

PathLike = Union[str, os.PathLike]
Rect = Tuple[float, float, float, float]

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
SCORE_COLOR = "#333333"
THRESHOLD_COLOR = "#E69F00"  # Okabe-Ito orange: no emotion uses it
SCORE_COLORS = (THRESHOLD_COLOR, "#56B4E9")  # second and third score curves (e.g. macro after micro)
CUT_COLOR = "#000000"

FIGSIZE_IN = (12.0, 3.2)
DPI = 120
# Placement of the intervals panel when it is alone, in figure fractions (left, bottom, width,
# height), fixed rather than computed by a layout engine so that a time maps to the same pixel
# column in every picture (and tests can find it). The right margin holds the legend. Every
# panel of every layout shares the left edge and width, so time ``t`` is always pixel column
# ``(AXES_RECT[0] + AXES_RECT[2] * t / time_extent(result)) * 1440``.
AXES_RECT = (0.06, 0.17, 0.80, 0.64)
# Heights in inches of the other layouts' pieces; the margins are those of the default picture.
SCORE_PANEL_IN = 1.2
EMOTION_PANEL_IN = 1.0
LANES_WITH_GT_IN = 2.6
PANEL_GAP_IN = 0.12
_TOP_IN = (1.0 - AXES_RECT[1] - AXES_RECT[3]) * FIGSIZE_IN[1]
_BOTTOM_IN = AXES_RECT[1] * FIGSIZE_IN[1]
# A 0.3 s micro-expression in an hour-long video would be far below one pixel wide.
MIN_BAR_FRACTION = 0.0025
# Score labels need about this many pixels; narrower bars show the score only through opacity.
_MIN_TEXT_PX = 26.0
_LANES: Tuple[str, ...] = ("micro", "macro")  # bottom to top
_GT_SUFFIX = " GT"
_BAR_HEIGHT = 0.56
_LONG_VIDEO_S = 90.0
# MEGC's usual bound on a micro-expression: ground truth without a type is laned by length.
_MICRO_MAX_S = 0.5


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


def time_start(result: VideoResult) -> float:
    """Left end of the time axis in seconds: 0, or the start of the part read (``--start``)."""
    return float(result.part_s[0]) if result.part_s else 0.0


def timeline_layout(score: bool = False, emotions: bool = False, truths: bool = False
                    ) -> Tuple[Tuple[float, float], Dict[str, Rect]]:
    """``(figsize in inches, {panel: (left, bottom, width, height) in figure fractions})`` for
    the panels drawn: ``"score"``, ``"emotions"`` (if asked) and ``"intervals"`` (always), top
    to bottom. Without any of them this is ``(FIGSIZE_IN, {"intervals": AXES_RECT})``; the
    pixel height of the PNG is ``figsize[1] * DPI``."""
    if not (score or emotions or truths):
        return FIGSIZE_IN, {"intervals": AXES_RECT}
    heights = [(name, h) for name, h, on in (("score", SCORE_PANEL_IN, score),
                                              ("emotions", EMOTION_PANEL_IN, emotions)) if on]
    heights.append(("intervals", LANES_WITH_GT_IN if truths else AXES_RECT[3] * FIGSIZE_IN[1]))
    total = _TOP_IN + _BOTTOM_IN + sum(h for _, h in heights) + PANEL_GAP_IN * (len(heights) - 1)
    rects: Dict[str, Rect] = {}
    top = total - _TOP_IN
    for name, h in heights:
        rects[name] = (AXES_RECT[0], (top - h) / total, AXES_RECT[2], h / total)
        top -= h + PANEL_GAP_IN
    return (FIGSIZE_IN[0], total), rects


def score_limits(signals: TimelineSignals) -> Tuple[float, float]:
    """y range of the score panel: ``(0, 1.05)`` when the score and thresholds all lie in
    [0, 1] (probabilities), else ``(min(0, lowest), 1.1 * highest)`` of them (NaN ignored)."""
    values = [] if signals.score is None else list(signals.score[np.isfinite(signals.score)])
    values += list(signals.thresholds().values())
    if not values or (min(values) >= 0.0 and max(values) <= 1.0):
        return 0.0, 1.05
    lo, hi = min(0.0, min(values)), 1.1 * max(values)
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


def timeline_figure(result: VideoResult, signals: Optional[TimelineSignals] = None,
                    truths: Optional[Sequence[Interval]] = None) -> Figure:
    """Build the timeline figure: ``FIGSIZE_IN[0] * DPI`` = 1440 pixels wide, panels placed by
    :func:`timeline_layout`, x from 0 to ``time_extent(result)`` seconds in every panel.

    ``signals``: the per-step curves (:class:`TimelineSignals`), times on the same clock as the
    intervals' ``onset_s``. ``truths``: this video's ground truth, frames in the result's
    numbering (``result.first_frame``); a bar runs from the onset frame's time to the offset
    frame's time, as a detection's does.
    """
    has_score = signals is not None and signals.score is not None
    has_emotions = signals is not None and signals.emotion_probs is not None
    has_truths = truths is not None
    figsize, rects = timeline_layout(has_score, has_emotions, has_truths)
    fig = Figure(figsize=figsize, dpi=DPI)
    FigureCanvasAgg(fig)
    x_min, x_max = time_start(result), time_extent(result)
    # labelled, so a reader of the figure (the HTML report) finds each panel
    ax = fig.add_axes(rects["intervals"], label="intervals")
    panels = [fig.add_axes(rects[name], sharex=ax, label=name) for name in ("score", "emotions") if name in rects]
    ax.set_xlim(x_min, x_max)
    _format_time_axis(ax, x_max)
    for upper in panels:
        upper.tick_params(labelbottom=False)

    lanes = _LANES if not has_truths else tuple(x for lane in _LANES for x in (lane + _GT_SUFFIX, lane))
    ax.set_ylim(-0.5, len(lanes) - 0.5 + 0.25)  # headroom above the top lane for score text
    ax.set_yticks(range(len(lanes)))
    ax.set_yticklabels(lanes, fontsize=8 if has_truths else None)  # "macro GT" fits the margin at 8 pt
    for y in range(len(lanes) - 1):
        # with ground truth, a faint line inside each detection/GT pair, the usual one between types
        faint = has_truths and lanes[y] == lanes[y + 1] + _GT_SUFFIX
        ax.axhline(y + 0.5, color="#E6E6E6" if faint else "#BBBBBB", linewidth=0.6, zorder=1)

    if has_score:
        _draw_score(panels[0], signals)
    if has_emotions:
        _draw_emotions(panels[-1], signals)
    all_axes = panels + [ax]
    has_no_face = any([_shade_no_face(a, result) for a in all_axes])
    has_cuts = any([_draw_cuts(a, result) for a in all_axes])
    px_per_s = FIGSIZE_IN[0] * DPI * AXES_RECT[2] / (x_max - x_min)
    unknown = _draw_bars(ax, result, x_max - x_min, px_per_s, lanes)
    if has_truths:
        unknown += [e for e in _draw_truths(ax, result, truths, x_max - x_min, lanes) if e not in unknown]

    if not result.face_found:
        _centre_note(ax, "no face found")
    elif not result.intervals:
        _centre_note(ax, "no expressions detected")

    handles: list = [Patch(facecolor=c, edgecolor=c, label=e) for e, c in EMOTION_COLORS.items()]
    if unknown:
        handles.append(Patch(facecolor=UNKNOWN_COLOR, edgecolor=UNKNOWN_COLOR, label="other: " + ", ".join(unknown)))
    if has_truths:
        handles.append(Patch(fill=False, edgecolor="#555555", linewidth=1.6, label="ground truth"))
    if has_no_face:
        handles.append(Patch(facecolor=NO_FACE_COLOR, edgecolor="#AAAAAA", label="no face"))
    if has_cuts:
        handles.append(Line2D([], [], color=CUT_COLOR, linewidth=1.0, label="shot cut"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=8,
              title="emotion", title_fontsize=8)
    all_axes[0].set_title(_title(result), fontsize=10, loc="left")
    return fig


def draw_timeline(result: VideoResult, path: PathLike, signals: Optional[TimelineSignals] = None,
                  truths: Optional[Sequence[Interval]] = None) -> None:
    """Write the timeline of ``result`` (see :func:`timeline_figure`) as a PNG at ``path``,
    atomically; 1440 x 384 pixels without ``signals`` and ``truths``."""
    fig = timeline_figure(result, signals, truths)
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


def _frame_time(result: VideoResult, frame: float, per_frame: float) -> float:
    """Start of frame ``frame`` (in the result's numbering) in seconds."""
    return (frame - result.first_frame) * per_frame


def _draw_score(ax, signals: TimelineSignals) -> None:
    """Each score curve, and each threshold as a dashed line (in its curve's colour when they
    share a name, e.g. a type)."""
    # wrapped: the legend's column and the panel's height hold about 16 characters at this size
    label = textwrap.fill(signals.score_label, 16)
    curves = signals.score_columns()
    colors = dict(zip(curves, [SCORE_COLOR] + list(SCORE_COLORS)))
    for name, curve in curves.items():
        ax.plot(signals.times_s, curve, color=colors[name], linewidth=1.0, zorder=3,
                label=label if len(curves) == 1 else name)
    for (name, level), dashes in zip(signals.thresholds().items(), ("--", "-.", ":", (0, (6, 2, 1, 2)))):
        ax.axhline(level, color=colors.get(name, THRESHOLD_COLOR), linestyle=dashes, linewidth=1.3, zorder=4,
                   label=f"{name} threshold {level:.3g}" if name in colors else f"{name} {level:.3g}")
    ax.set_ylim(*score_limits(signals))
    ax.set_ylabel(label, fontsize=8)
    ax.tick_params(axis="y", labelsize=7)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=8)


def _draw_emotions(ax, signals: TimelineSignals) -> None:
    """Stacked areas, first class at the bottom; steps with any NaN are left empty (no face)."""
    probs, names = signals.megc_probs()
    valid = np.all(np.isfinite(probs), axis=1)
    stacked = np.cumsum(np.where(valid[:, None], probs, 0.0), axis=1)
    lower = np.zeros(len(probs))
    for k, name in enumerate(names):
        ax.fill_between(signals.times_s, lower, stacked[:, k], where=valid, color=emotion_color(name),
                        linewidth=0, zorder=2)
        lower = stacked[:, k]
    ax.set_ylim(0.0, 1.0)
    ax.set_yticks([0.0, 0.5, 1.0])
    ax.set_ylabel("emotion p", fontsize=8)
    ax.tick_params(axis="y", labelsize=7)


def _shade_no_face(ax, result: VideoResult) -> bool:
    per_frame = _frame_seconds(result)
    if per_frame is None or not result.frames_without_face:
        return False
    for first, last in result.frames_without_face:
        # Frame ``last`` lasts until the next frame starts, hence ``last + 1``.
        ax.axvspan(_frame_time(result, first, per_frame), _frame_time(result, last + 1, per_frame),
                   color=NO_FACE_COLOR, alpha=0.7, linewidth=0, zorder=0)
    return True


def _draw_cuts(ax, result: VideoResult) -> bool:
    per_frame = _frame_seconds(result)
    if per_frame is None or not result.shot_cuts:
        return False
    for frame in result.shot_cuts:  # the line marks the start of the new shot's first frame
        ax.axvline(_frame_time(result, frame, per_frame), color=CUT_COLOR, linewidth=1.0, zorder=5)
    return True


def _draw_bars(ax, result: VideoResult, x_max: float, px_per_s: float, lanes: Sequence[str]) -> List[str]:
    """Draw every interval; return the emotion names that fell back to the grey colour."""
    min_width = MIN_BAR_FRACTION * x_max
    unknown: List[str] = []
    # Right edge (seconds) of the last score label per lane, to keep labels from overlapping.
    text_end: Dict[str, float] = {lane: -float("inf") for lane in _LANES}
    for interval in sorted(result.intervals, key=lambda i: i.onset_s):
        lane = interval.type if interval.type in _LANES else "macro"
        y = lanes.index(lane)
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


def _draw_truths(ax, result: VideoResult, truths: Sequence[Interval], x_max: float,
                 lanes: Sequence[str]) -> List[str]:
    """Outlined bars in the GT lanes; return the emotion names drawn grey."""
    per_frame = _frame_seconds(result)
    if per_frame is None:
        return []
    min_width = MIN_BAR_FRACTION * x_max
    unknown: List[str] = []
    for truth in truths:
        start_s, end_s = (_frame_time(result, f, per_frame) for f in (truth.onset, truth.offset))
        kind = truth.type or ("micro" if (truth.length * per_frame) <= _MICRO_MAX_S else "macro")
        y = lanes.index(kind + _GT_SUFFIX)
        emotion = EMOTION4_MAP.get(truth.emotion, truth.emotion)
        color = emotion_color(emotion)
        if emotion not in EMOTION_COLORS and emotion not in unknown:
            unknown.append(emotion or "unlabelled")
        start, width = _bar_span(start_s, end_s, min_width)
        ax.barh(y, width, left=start, height=_BAR_HEIGHT, color=color, alpha=0.15, linewidth=0, zorder=2)
        ax.barh(y, width, left=start, height=_BAR_HEIGHT, fill=False, edgecolor=color, linewidth=1.6, zorder=3)
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
            color="#555555", zorder=6,
            bbox=dict(boxstyle="round,pad=0.4", facecolor="white", edgecolor="#BBBBBB", alpha=0.9))


def _title(result: VideoResult) -> str:
    name = result.name
    if len(name) > 60:
        name = name[:57] + "..."
    counts = _count_types(result.intervals)
    duration = float(result.duration_s or 0.0)
    model = result.model.get("name") if isinstance(result.model, dict) else None
    method = f"{result.method} ({model})" if model else result.method
    return (f"{name}  |  {format_clock(duration)} ({duration:.1f} s)  |  "
            f"{counts.get('macro', 0)} macro, {counts.get('micro', 0)} micro  |  {method}  |  "
            "thresholds " + ", ".join(f"{k} {v:.2f}" for k, v in result.thresholds.items()))


def _count_types(intervals: Sequence) -> Dict[str, int]:
    counts: Dict[str, int] = {}
    for interval in intervals:
        counts[interval.type] = counts.get(interval.type, 0) + 1
    return counts
