"""``visionattn detect --report``: a page per video to look at, and an index page for a batch.

``<name>_report.html`` shows the video above its timeline picture (:mod:`.timeline`): a
playhead runs along the timeline as the video plays, clicking an expression's bar (or its row
in the table under the picture) seeks the video to its onset, and clicking elsewhere on the
timeline seeks to that time. The page holds its style, script and picture inline and fetches
nothing from the network (its Content-Security-Policy forbids it); the video is the MP4 beside
it: ``<name>_annotated.mp4`` with ``--annotate``, else ``<name>_report.mp4``, both H.264 with
the source's audio (:mod:`visionattn.data.video_writer`), which browsers play. Copy or serve
the output folder as it is.

``index.html`` lists every video of the batch with its counts, linking to its page.
"""
from __future__ import annotations

import base64
import html
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Union

from ..data.frames import iter_timed_frames
from ..data.video_writer import BrowserVideoWriter
from ..evaluation import Interval
from ..utils import atomic_write_text, counted
from .result import VideoResult
from .signals import TimelineSignals
from .timeline import DPI, emotion_color, format_clock, timeline_figure

PathLike = Union[str, os.PathLike]

MIN_HIT_FRACTION = 0.006  # clickable width of the shortest bar, as a fraction of the picture (~8 px at 1440)
# Content-Security-Policy: inline style/script, the inline picture, media from the page's own
# folder; no connection, font, frame or other source at all.
CSP = ("default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:; "
       "media-src 'self'")


@dataclass(frozen=True)
class IndexEntry:
    """One row of ``index.html``: the clip's output ``name``, its ``source`` path, its result
    (None when it failed) and the report page (relative to the index), or the ``error``."""

    name: str
    source: str
    result: Optional[VideoResult] = None
    page: Optional[str] = None
    error: str = ""


def write_report_video(source: PathLike, result: VideoResult, path: PathLike) -> None:
    """The frames ``result`` was made from (all, or its ``part_s``) as a browser-playable MP4 at
    ``path``, with the source's audio; the report plays it when there is no annotated video."""
    start, end = (result.part_s or [0.0, None])
    fps = float(result.fps) if result.fps and result.fps > 0 else None
    with BrowserVideoWriter(path, fps or 30.0, (result.width, result.height), audio_from=source,
                            end_s=end) as writer:
        for _, seconds, frame in iter_timed_frames(source, fps=fps or 30.0, start_s=float(start or 0.0), end_s=end):
            writer.write(frame, seconds)


def write_report(result: VideoResult, path: PathLike, video: PathLike, signals: Optional[TimelineSignals] = None,
                 truths: Optional[Sequence[Interval]] = None, video_start_s: Optional[float] = None) -> None:
    """Write the HTML page of ``result`` at ``path`` (atomically).

    Args:
        result: the video's detections.
        path: the ``.html`` to write.
        video: the MP4 the page plays (beside the page; referred to by its file name).
        signals, truths: as :func:`~visionattn.inference.timeline.timeline_figure` draws them.
        video_start_s: the time, on the result's clock, of the video's first frame (default:
            the first step of ``signals``, else the start of ``result.part_s``, else 0).
    """
    path, video = Path(path), Path(video)
    if video_start_s is None:
        if signals is not None and len(signals.times_s):
            video_start_s = float(signals.times_s[0])
        else:
            video_start_s = float(result.part_s[0]) if result.part_s else 0.0
    picture, geometry = _timeline_picture(result, signals, truths)
    data = {"videoStart": round(video_start_s, 6), **geometry}
    order = sorted(range(len(result.intervals)), key=lambda k: result.intervals[k].onset_s)  # table in time order
    rows = "\n".join(_interval_row(k, result.intervals[k]) for k in order)
    hits = "\n".join(_hit_box(k, interval, box) for k, (interval, box) in
                     enumerate(zip(result.intervals, geometry["bars"])))
    title = html.escape(result.name)
    page = _PAGE.format(
        title=title, csp=CSP, style=_STYLE, script=_SCRIPT, data=json.dumps(data),
        summary=html.escape(_summary(result)), source=html.escape(str(result.video)),
        video=html.escape(_relative(video, path.parent)), picture=picture, hits=hits,
        rows=rows or '<tr><td colspan="7" class="none">no expressions detected</td></tr>',
        plot_left=f"{geometry['plot'][0] * 100:.4f}", plot_top=f"{geometry['plot'][1] * 100:.4f}",
        plot_height=f"{geometry['plot'][3] * 100:.4f}")
    atomic_write_text(path, page)


def write_index(entries: Sequence[IndexEntry], path: PathLike, pooled_csv: Optional[PathLike] = None) -> None:
    """Write ``index.html`` at ``path``: one row per clip (name, duration, micro and macro counts,
    frames without a face, method, or the error), linking to each report page."""
    path = Path(path)
    done = [e for e in entries if e.result is not None]
    micro = sum(_count(e.result, "micro") for e in done)
    macro = sum(_count(e.result, "macro") for e in done)
    rows = "\n".join(_index_row(e) for e in entries)
    pooled = (f' Pooled detections (MEGC layout, for <code>visionattn evaluate</code>): '
              f'<a href="{html.escape(_relative(Path(pooled_csv), path.parent))}">'
              f'{html.escape(Path(pooled_csv).name)}</a>.') if pooled_csv else ""
    failed = len(entries) - len(done)
    summary = (f"{counted(len(entries), 'video')}: {micro} micro and {macro} macro expressions"
               + (f"; {failed} failed" if failed else "") + ".")
    page = _INDEX.format(csp=CSP, style=_STYLE, summary=html.escape(summary) + pooled, rows=rows)
    atomic_write_text(path, page)


# ---------------------------------------------------------------- pieces
def _timeline_picture(result: VideoResult, signals: Optional[TimelineSignals],
                      truths: Optional[Sequence[Interval]]) -> tuple:
    """The timeline PNG as a data URL, and where things are on it in fractions of its width and
    height (from the top left): ``plot`` (left, top, width, height of the panels' common
    column), ``axis`` (the times at the plot's left and right edges) and ``bars`` (left, top,
    width, height of each interval's clickable box, in ``result.intervals`` order)."""
    fig = timeline_figure(result, signals, truths)
    axes = {a.get_label(): a for a in fig.axes}
    lanes_ax = axes["intervals"]
    to_figure = lanes_ax.transData + fig.transFigure.inverted()
    boxes = [a.get_position() for a in fig.axes]
    top = max(b.y1 for b in boxes)
    bottom = min(b.y0 for b in boxes)
    x0, x1 = lanes_ax.get_xlim()
    left_f, right_f = (to_figure.transform((x, 0.0))[0] for x in (x0, x1))
    plot = [left_f, 1.0 - top, right_f - left_f, top - bottom]
    lanes = [t.get_text() for t in lanes_ax.get_yticklabels()]
    bars = []
    for interval in result.intervals:
        lane = interval.type if interval.type in lanes else "macro"
        y = lanes.index(lane)
        (l, t), (r, b) = to_figure.transform([(interval.onset_s, y + 0.4), (interval.offset_s, y - 0.4)])
        if r - l < MIN_HIT_FRACTION:
            centre = (l + r) / 2
            l, r = centre - MIN_HIT_FRACTION / 2, centre + MIN_HIT_FRACTION / 2
        bars.append([l, 1.0 - t, r - l, t - b])
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
    return url, {"plot": [round(v, 6) for v in plot], "axis": [float(x0), float(x1)],
                 "bars": [[round(v, 6) for v in box] for box in bars]}


def _hit_box(k: int, interval, box: List[float]) -> str:
    left, top, width, height = (v * 100 for v in box)
    label = html.escape(f"{interval.type} {interval.emotion} {interval.score:.2f}: "
                        f"{interval.onset_s:.2f}-{interval.offset_s:.2f} s (frames {interval.onset}-{interval.offset})")
    return (f'<button class="bar" type="button" id="bar-{k}" data-onset="{interval.onset_s}" title="{label}" '
            f'aria-label="{label}" style="left:{left:.4f}%;top:{top:.4f}%;width:{width:.4f}%;height:{height:.4f}%">'
            f'</button>')


def _interval_row(k: int, interval) -> str:
    swatch = f'<span class="swatch" style="background:{emotion_color(interval.emotion)}"></span>'
    return (f'<tr id="row-{k}" data-onset="{interval.onset_s}" data-offset="{interval.offset_s}"><td><button type="button" class="seek" '
            f'data-onset="{interval.onset_s}">{_clock(interval.onset_s)}</button></td><td>{html.escape(interval.type)}</td>'
            f'<td>{swatch}{html.escape(interval.emotion)}</td><td>{interval.score:.2f}</td>'
            f'<td>{interval.offset_s - interval.onset_s:.2f} s</td><td>{interval.onset}</td><td>{interval.offset}</td></tr>')


def _index_row(entry: IndexEntry) -> str:
    name = html.escape(entry.name)
    link = f'<a href="{html.escape(entry.page)}">{name}</a>' if entry.page else name
    source = f'<td class="path">{html.escape(entry.source)}</td>'
    if entry.result is None:
        return f'<tr class="failed"><td>{link}</td>{source}<td colspan="5">failed: {html.escape(entry.error)}</td></tr>'
    r = entry.result
    without = r.unread_frame_count
    face = "no face found" if not r.face_found else f"{without} without a readable face" if without else "in every frame"
    return (f"<tr><td>{link}</td>{source}<td>{format_clock(r.duration_s)} ({r.duration_s:.1f} s)</td>"
            f"<td>{_count(r, 'micro')}</td><td>{_count(r, 'macro')}</td><td>{html.escape(face)}</td>"
            f"<td>{html.escape(r.method)}</td></tr>")


def _clock(seconds: float) -> str:
    """``12.34 s``, with ``m:ss`` before it from a minute on."""
    return f"{format_clock(seconds)} ({seconds:.2f} s)" if seconds >= 60 else f"{seconds:.2f} s"


def _count(result: VideoResult, kind: str) -> int:
    return sum(i.type == kind for i in result.intervals)


def _summary(result: VideoResult) -> str:
    part = ""
    if result.part_s:
        start, end = result.part_s
        part = f" | part {start:g} s to {'the end' if end is None else f'{end:g} s'}"
    thresholds = ", ".join(f"{k} {v:g}" for k, v in result.thresholds.items())
    without = result.unread_frame_count
    face = "no face found" if not result.face_found else f"{counted(without, 'frame')} without a readable face"
    return (f"{format_clock(result.duration_s)} ({result.duration_s:.1f} s), {result.frame_count} frames at "
            f"{result.fps:g} fps{part} | {_count(result, 'micro')} micro, {_count(result, 'macro')} macro | "
            f"{face} | {result.method}; thresholds {thresholds}")


def _relative(target: Path, folder: Path) -> str:
    return Path(os.path.relpath(Path(target).resolve(), Path(folder).resolve())).as_posix()


# ---------------------------------------------------------------- page templates
_STYLE = """
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 16px 24px; color: #222; }
h1 { font-size: 20px; margin: 0 0 4px; }
.meta { color: #555; margin: 0 0 12px; }
.path { color: #777; font-size: 12px; word-break: break-all; }
video { display: block; height: min(45vh, 540px); max-width: 100%; background: #000; margin-bottom: 8px; }
.timeline { position: relative; width: 100%; max-width: 1440px; cursor: pointer; user-select: none; }
.timeline img { display: block; width: 100%; height: auto; }
.playhead { position: absolute; width: 2px; margin-left: -1px; background: #d00; pointer-events: none; }
.bar { position: absolute; padding: 0; margin: 0; border: 0; background: transparent; cursor: pointer; }
.bar:hover, .bar:focus { outline: 2px solid #000; background: rgba(255, 255, 255, 0.25); }
table { border-collapse: collapse; margin-top: 12px; }
th, td { padding: 3px 10px; border-bottom: 1px solid #ddd; text-align: left; }
tr.active td { background: #fff3c4; }
tr.failed td { color: #a00; }
td.none { color: #777; }
button.seek { font: inherit; cursor: pointer; }
.swatch { display: inline-block; width: 10px; height: 10px; margin-right: 6px; border-radius: 2px; }
"""

_SCRIPT = """
(function () {
  const data = JSON.parse(document.getElementById('report-data').textContent);
  const video = document.getElementById('video');
  const timeline = document.getElementById('timeline');
  const playhead = document.getElementById('playhead');
  const [t0, t1] = data.axis, [left, , width] = data.plot;
  const rows = Array.from(document.querySelectorAll('tr[data-onset]'));
  // the result's clock (the timeline's) is the video's clock shifted by videoStart
  const toTimeline = (t) => t + data.videoStart;
  const seek = (t) => { video.currentTime = Math.max(0, t - data.videoStart); };
  function place() {
    const t = toTimeline(video.currentTime);
    const f = left + width * Math.min(Math.max((t - t0) / (t1 - t0), 0), 1);
    playhead.style.left = (f * 100) + '%';
    rows.forEach((row) => row.classList.toggle('active', t >= +row.dataset.onset && t <= +row.dataset.offset));
  }
  function frame() { place(); if (!video.paused && !video.ended) requestAnimationFrame(frame); }
  video.addEventListener('play', () => requestAnimationFrame(frame));
  ['timeupdate', 'seeked', 'loadedmetadata'].forEach((e) => video.addEventListener(e, place));
  document.querySelectorAll('[data-onset]').forEach((el) => {
    if (el.tagName === 'TR') return;
    el.addEventListener('click', (event) => { event.stopPropagation(); seek(parseFloat(el.dataset.onset)); });
  });
  timeline.addEventListener('click', (event) => {
    const box = timeline.getBoundingClientRect();
    const f = (event.clientX - box.left) / box.width;
    if (f < left || f > left + width) return;
    seek(t0 + (t1 - t0) * (f - left) / width);
  });
  place();
})();
"""

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}: visionattn detect</title>
<style>{style}</style>
</head>
<body>
<h1>{title}</h1>
<p class="meta">{summary}<br><span class="path">{source}</span></p>
<video id="video" controls preload="auto" src="{video}"></video>
<div class="timeline" id="timeline">
<img src="{picture}" alt="timeline of {title}">
<div class="playhead" id="playhead" style="top:{plot_top}%;height:{plot_height}%;left:{plot_left}%"></div>
{hits}
</div>
<table>
<thead><tr><th>onset</th><th>type</th><th>emotion</th><th>score</th><th>length</th><th>onset frame</th><th>offset frame</th></tr></thead>
<tbody>
{rows}
</tbody>
</table>
<script type="application/json" id="report-data">{data}</script>
<script>{script}</script>
</body>
</html>
"""

_INDEX = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<title>visionattn detect</title>
<style>{style}</style>
</head>
<body>
<h1>visionattn detect</h1>
<p class="meta">{summary}</p>
<table>
<thead><tr><th>video</th><th>source</th><th>duration</th><th>micro</th><th>macro</th><th>face</th><th>method</th></tr></thead>
<tbody>
{rows}
</tbody>
</table>
</body>
</html>
"""
