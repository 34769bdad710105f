"""The timeline PNG and the annotated mp4 written next to ``visionattn detect``'s results."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from skimage import data as skdata

import visionattn.inference.annotate as annotate_mod
from visionattn.inference.annotate import write_annotated
from visionattn.inference.result import DetectedInterval, VideoResult
from visionattn.evaluation import Interval
from visionattn.features.emotions import fer_to_megc
from visionattn.inference.signals import TimelineSignals
from visionattn.inference.timeline import (
    AXES_RECT,
    DPI,
    EMOTION_COLORS,
    FIGSIZE_IN,
    THRESHOLD_COLOR,
    draw_timeline,
    emotion_bgr,
    time_extent,
    timeline_layout,
)
from visionattn.utils import UserError

from media import write_video

W, H, FPS, N = 160, 120, 25.0, 40


def _result(intervals=(), without_face=(), face_found=True, duration=60.0, fps=30.0, **kw) -> VideoResult:
    return VideoResult(
        video="/videos/clip01.mp4", fps=fps, frame_count=int(round(duration * fps)), duration_s=duration,
        width=kw.pop("width", 640), height=kw.pop("height", 480), face_found=face_found,
        intervals=list(intervals), frames_without_face=[list(r) for r in without_face],
        thresholds={"micro": 0.5, "macro": 0.5},
    )


def _iv(onset_s, offset_s, type_="macro", emotion="positive", score=1.0, fps=30.0) -> DetectedInterval:
    return DetectedInterval(int(onset_s * fps), int(offset_s * fps), onset_s, offset_s, type_, emotion, score)


def _read_png(path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, f"{path} is not a readable image"
    return image


def _columns_with(image: np.ndarray, bgr, tol=12) -> np.ndarray:
    """Indices of pixel columns holding at least a few pixels of colour ``bgr``."""
    close = np.all(np.abs(image.astype(int) - np.array(bgr)) <= tol, axis=2)
    return np.flatnonzero(close.sum(axis=0) >= 3)


def _x_pixel(t: float, result: VideoResult, width: int) -> float:
    return (AXES_RECT[0] + AXES_RECT[2] * t / time_extent(result)) * width


def _leftovers(folder, keep):
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


# ---------------------------------------------------------------------------------- timeline


def test_timeline_png_size_and_bar_position(tmp_path):
    result = _result([_iv(10.0, 30.0, "macro", "positive", 1.0)])
    out = tmp_path / "clip01_timeline.png"
    draw_timeline(result, out)
    image = _read_png(out)
    assert abs(image.shape[1] - 1440) <= 2 and abs(image.shape[0] - 384) <= 2

    cols = _columns_with(image, emotion_bgr("positive"))
    assert cols.size, "no pixel of the 'positive' colour"
    # The legend swatch shares the colour; it sits right of the axes.
    bar_cols = cols[cols < (AXES_RECT[0] + AXES_RECT[2]) * image.shape[1]]
    assert abs(bar_cols.min() - _x_pixel(10.0, result, image.shape[1])) <= 3
    assert abs(bar_cols.max() - _x_pixel(30.0, result, image.shape[1])) <= 3
    assert int(round(_x_pixel(20.0, result, image.shape[1]))) in set(bar_cols)
    assert int(round(_x_pixel(45.0, result, image.shape[1]))) not in set(bar_cols)
    assert _leftovers(tmp_path, {out.name}) == []


def test_timeline_short_micro_interval_stays_visible(tmp_path):
    # 0.3 s in an hour is 0.09 px wide at true scale.
    result = _result([_iv(1800.0, 1800.3, "micro", "surprise", 1.0)], duration=3600.0)
    out = tmp_path / "t.png"
    draw_timeline(result, out)
    image = _read_png(out)
    cols = _columns_with(image, emotion_bgr("surprise"))
    bar_cols = cols[cols < (AXES_RECT[0] + AXES_RECT[2]) * image.shape[1]]
    assert bar_cols.size >= 2
    assert abs(bar_cols.mean() - _x_pixel(1800.15, result, image.shape[1])) <= 3


def test_timeline_colours_distinct_and_unknown_is_grey(tmp_path):
    assert len(set(EMOTION_COLORS.values())) == len(EMOTION_COLORS) >= 4
    assert set(EMOTION_COLORS) >= {"negative", "positive", "surprise", "others"}
    assert emotion_bgr("bewildered") == (127, 127, 127)
    out = tmp_path / "t.png"
    draw_timeline(_result([_iv(5.0, 20.0, "macro", "bewildered", 1.0)]), out)
    assert _leftovers(tmp_path, {out.name}) == []
    _read_png(out)


def test_timeline_no_face_span_is_shaded(tmp_path):
    # Frames 1200..1499 at 30 fps: 40 s to 50 s.
    result = _result([_iv(5.0, 8.0)], without_face=[(1200, 1499)])
    out = tmp_path / "t.png"
    draw_timeline(result, out)
    image = _read_png(out)
    row = int(image.shape[0] * (1 - AXES_RECT[1] - AXES_RECT[3] * 0.05))  # near the axes top
    inside = image[row, int(_x_pixel(45.0, result, image.shape[1]))].astype(int)
    outside = image[row, int(_x_pixel(30.0, result, image.shape[1]))].astype(int)
    assert np.all(outside >= 250), "background should be white"
    assert np.all((inside > 180) & (inside < 245)) and np.ptp(inside) <= 6, "expected light grey"


@pytest.mark.parametrize("face_found", [True, False])
def test_timeline_empty_result_is_a_valid_png(tmp_path, face_found):
    result = _result(face_found=face_found, without_face=[] if face_found else [(0, 1799)])
    out = tmp_path / "empty.png"
    draw_timeline(result, out)
    image = _read_png(out)
    assert image.shape[:2] == (384, 1440)
    for color in EMOTION_COLORS:
        cols = _columns_with(image, emotion_bgr(color))
        assert not np.any(cols < (AXES_RECT[0] + AXES_RECT[2]) * image.shape[1])


def test_timeline_many_intervals_in_long_video(tmp_path):
    rng = np.random.default_rng(0)
    intervals = []
    for k in range(150):
        start = float(rng.uniform(0, 3590))
        micro = k % 2 == 0
        intervals.append(_iv(start, start + (0.3 if micro else float(rng.uniform(1, 30))),
                             "micro" if micro else "macro", list(EMOTION_COLORS)[k % 4], float(rng.uniform())))
    out = tmp_path / "long.png"
    draw_timeline(_result(intervals, duration=3600.0), out)
    assert _read_png(out).shape[:2] == (384, 1440)


def test_timeline_failed_render_leaves_nothing(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    def boom(self, *args, **kwargs):
        raise RuntimeError("disk full")

    out = tmp_path / "t.png"
    monkeypatch.setattr(Figure, "savefig", boom)
    with pytest.raises(RuntimeError):
        draw_timeline(_result([_iv(1.0, 2.0)]), out)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------- annotated video


@pytest.fixture(scope="module")
def source_video(tmp_path_factory):
    """40 frames of 160x120 at 25 fps: the astronaut, shifted a pixel per frame."""
    path = tmp_path_factory.mktemp("src") / "source.mp4"
    base = cv2.resize(cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR), (W, H), interpolation=cv2.INTER_AREA)
    return write_video(path, [np.roll(base, i, axis=1) for i in range(N)], FPS)


def _decode(path) -> list:
    """Every frame of ``path``, read with OpenCV alone (not the library's reader under test)."""
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


def _video_result(intervals=(), without_face=()) -> VideoResult:
    return VideoResult(
        video="source.mp4", fps=FPS, frame_count=N, duration_s=N / FPS, width=W, height=H, face_found=True,
        intervals=list(intervals), frames_without_face=[list(r) for r in without_face],
        thresholds={"micro": 0.5, "macro": 0.5},
    )


def _boxes(finite_from: int) -> np.ndarray:
    boxes = np.full((N, 4), np.nan, dtype=np.float32)
    boxes[finite_from:] = (50, 30, 60, 70)
    return boxes


def _diff(a: np.ndarray, b: np.ndarray, rows: slice, cols: slice) -> float:
    return float(np.abs(a[rows, cols].astype(float) - b[rows, cols].astype(float)).mean())


def test_annotated_video_frames_and_drawings(tmp_path, source_video):
    interval = DetectedInterval(10, 25, 0.4, 1.0, "macro", "positive", 0.87)
    result = _video_result([interval], without_face=[(30, 34)])
    out = tmp_path / "annotated.mp4"
    write_annotated(source_video, result, _boxes(finite_from=20), out, progress=False)
    assert _leftovers(tmp_path, {out.name}) == []

    import av

    with av.open(str(out)) as container:  # what browsers play: H.264 in 4:2:0
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.codec_context.pix_fmt) == ("h264", "yuv420p")
        assert not container.streams.audio  # the source has none
    cap = cv2.VideoCapture(str(out))
    assert cap.isOpened()
    assert int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) == W and int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == H
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(FPS, rel=0.01)
    cap.release()
    src, ann = _decode(source_video), _decode(out)
    assert len(ann) == len(src) == N

    banner = (slice(0, 12), slice(0, 110))  # top left: where the label is drawn
    middle = (slice(40, 80), slice(115, 160))  # right of the face box, away from all drawings
    # Frame 5: no interval, no box; only the clock in the bottom corner changes.
    assert _diff(ann[5], src[5], *banner) < 6
    assert _diff(ann[5], src[5], *middle) < 6
    # Frame 15: the banner is painted over the picture, in the 'positive' colour.
    assert _diff(ann[15], src[15], *banner) > 30
    banner_colour = np.median(ann[15][banner].reshape(-1, 3), axis=0)  # the text covers the minority
    assert np.abs(banner_colour - np.array(emotion_bgr("positive"))).max() < 40
    # Clock, bottom left, on every frame.
    clock = (slice(H - 10, H), slice(0, 40))
    assert _diff(ann[5], src[5], *clock) > 30
    # Face box: green on frame 22 (face found), orange on 32 (frame without face).
    left_edge = (slice(40, 90), slice(49, 52))
    assert _diff(ann[22], src[22], *left_edge) > 30
    edge22 = ann[22][45:85, 49:52].reshape(-1, 3).astype(float).mean(axis=0)  # B, G, R
    edge32 = ann[32][45:85, 49:52].reshape(-1, 3).astype(float).mean(axis=0)
    assert edge22[1] > edge22[2] + 60 and edge22[1] > edge22[0] + 60  # green dominates
    assert edge32[2] > edge32[1] + 40 > edge32[0] + 80  # red > green > blue: orange
    # After the interval the banner is gone again.
    assert _diff(ann[28], src[28], *banner) < 6


def test_annotated_video_extra_frames_get_no_box(tmp_path, source_video):
    out = tmp_path / "a.mp4"
    boxes = np.tile(np.array([[50, 30, 60, 70]], dtype=np.float32), (10, 1))  # rows for 10 of 40 frames
    write_annotated(source_video, _video_result(), boxes, out, progress=False)
    src, ann = _decode(source_video), _decode(out)
    assert len(ann) == N
    left_edge = (slice(40, 90), slice(49, 52))
    assert _diff(ann[5], src[5], *left_edge) > 30
    assert _diff(ann[20], src[20], *left_edge) < 6


def test_annotated_video_error_midway_leaves_nothing(tmp_path, source_video, monkeypatch):
    real = annotate_mod.iter_timed_frames

    def failing(source, *args, **kwargs):
        for index, seconds, frame in real(source, *args, **kwargs):
            if index == 12:
                raise RuntimeError("decoder died")
            yield index, seconds, frame

    monkeypatch.setattr(annotate_mod, "iter_timed_frames", failing)
    out = tmp_path / "a.mp4"
    with pytest.raises(RuntimeError, match="decoder died"):
        write_annotated(source_video, _video_result(), _boxes(0), out, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_annotated_video_failure_keeps_previous_output(tmp_path, source_video, monkeypatch):
    out = tmp_path / "a.mp4"
    out.write_bytes(b"previous")

    def failing(source, *args, **kwargs):
        raise RuntimeError("no frames")
        yield  # pragma: no cover

    monkeypatch.setattr(annotate_mod, "iter_timed_frames", failing)
    with pytest.raises(RuntimeError):
        write_annotated(source_video, _video_result(), _boxes(0), out, progress=False)
    assert out.read_bytes() == b"previous"
    assert _leftovers(tmp_path, {out.name}) == []


def test_annotated_video_unwritable_raises_user_error(tmp_path, source_video, monkeypatch):
    import av

    def refuse(*args, **kwargs):
        raise PermissionError("read-only file system")

    monkeypatch.setattr(av, "open", refuse)
    out = tmp_path / "a.mp4"
    with pytest.raises(UserError, match="a.mp4"):
        write_annotated(source_video, _video_result(), _boxes(0), out, progress=False)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------- timeline: why


FER7 = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")  # FER2013's order (realface.md)


def _why_result(**kw) -> VideoResult:
    """60 s at 30 fps in a folder numbering whose first frame is 100: frame n is at (n - 100) / 30 s."""
    defaults = dict(video="/videos/s15/clip01", fps=30.0, frame_count=1800, duration_s=60.0, width=640, height=480,
                    face_found=True, thresholds={"micro": 0.5, "macro": 0.5}, first_frame=100,
                    frame_numbering="the frame folder's own numbers")
    defaults.update(kw)
    return VideoResult(**defaults)


def _signals(score=None, threshold=0.5, probs=None, names=FER7, label="FEDN score") -> TimelineSignals:
    t = np.arange(1800) / 30.0
    return TimelineSignals(times_s=t, score=None if score is None else np.broadcast_to(score, t.shape).copy(),
                           score_label=label, score_threshold=threshold, emotion_probs=probs, emotion_names=names)


def _panel_rows(rect, height_px, lo=0.0, hi=1.0):
    """Pixel rows of the panel ``rect``: a function value -> row, and the (top, bottom) rows inside it."""
    def row(v):
        return height_px * (1 - (rect[1] + rect[3] * (v - lo) / (hi - lo)))
    return row, (int(row(hi)) + 3, int(row(lo)) - 3)


def _hex_bgr(hex_colour: str):
    h = hex_colour.lstrip("#")
    return tuple(int(h[i:i + 2], 16) for i in (4, 2, 0))


def test_timeline_layout_keeps_time_columns_and_margins():
    assert timeline_layout() == (FIGSIZE_IN, {"intervals": AXES_RECT})
    size, rects = timeline_layout(score=True, emotions=True, truths=True)
    assert list(rects) == ["score", "emotions", "intervals"] and size[0] == FIGSIZE_IN[0] and size[1] > FIGSIZE_IN[1]
    for rect in rects.values():  # same columns as the default picture: a time has one pixel column
        assert rect[0] == AXES_RECT[0] and rect[2] == AXES_RECT[2]
    tops = [r[1] + r[3] for r in rects.values()]
    bottoms = [r[1] for r in rects.values()]
    assert all(b > t2 for b, t2 in zip(bottoms[:-1], tops[1:])), "panels overlap or are out of order"
    # title and x-axis margins in inches are those of the default picture
    assert (1 - tops[0]) * size[1] == pytest.approx((1 - AXES_RECT[1] - AXES_RECT[3]) * FIGSIZE_IN[1])
    assert bottoms[-1] * size[1] == pytest.approx(AXES_RECT[1] * FIGSIZE_IN[1])


@pytest.mark.parametrize("score, threshold, hi", [
    (0.1, 0.5, 1.05),  # probabilities: the axis runs to 1.05
    (np.r_[np.full(900, 1.0), np.full(900, 8.0)], 4.0, 8.8),  # motion energy: to 1.1 x the highest value
])
def test_timeline_threshold_line_at_its_height(tmp_path, score, threshold, hi):
    result = _why_result()
    out = tmp_path / "t.png"
    draw_timeline(result, out, signals=_signals(score=score, threshold=threshold, label="motion energy"))
    image = _read_png(out)
    size, rects = timeline_layout(score=True)
    assert image.shape[0] == pytest.approx(size[1] * DPI, abs=1) and image.shape[1] == 1440
    row, (top, bottom) = _panel_rows(rects["score"], image.shape[0], 0.0, hi)
    inside = slice(int(_x_pixel(1.0, result, 1440)), int(_x_pixel(59.0, result, 1440)))
    close = np.all(np.abs(image[:, inside].astype(int) - np.array(_hex_bgr(THRESHOLD_COLOR))) <= 40, axis=2)
    counts = close.sum(axis=1)
    rows = np.flatnonzero(counts >= 0.3 * counts.max())
    assert counts.max() > 300, "no dashed threshold line across the panel"
    assert top <= rows.min() and rows.max() <= bottom
    assert abs(rows.mean() - row(threshold)) <= 2


def test_timeline_shot_cut_line_crosses_every_panel_at_its_frame(tmp_path):
    # folder frame 700 with the first frame numbered 100 is 20 s in (23.3 s if the numbering were ignored)
    result = _why_result(shot_cuts=[700])
    probs = np.tile([0.4, 0.2, 0.1, 0.05, 0.1, 0.05, 0.1], (1800, 1))
    out = tmp_path / "t.png"
    draw_timeline(result, out, signals=_signals(score=0.1, probs=probs), truths=[])
    image = _read_png(out)
    _, rects = timeline_layout(score=True, emotions=True, truths=True)
    x = int(round(_x_pixel(20.0, result, 1440)))
    for name, rect in rects.items():
        _, (top, bottom) = _panel_rows(rect, image.shape[0])
        band = image[top:bottom].astype(int).max(axis=2)  # brightest channel: dark only where black
        at_cut = band[:, x - 1:x + 2].min(axis=1) < 90
        aside = band[:, x + 12:x + 15].min(axis=1) < 90
        assert at_cut.mean() > 0.9, f"no cut line in the {name} panel"
        assert aside.mean() < 0.2, f"dark column beside the cut in the {name} panel"


def test_timeline_no_face_span_shaded_in_every_panel(tmp_path):
    # folder frames 1300..1599 (first frame 100) at 30 fps: 40 s to 50 s; no probabilities without a face
    result = _why_result(frames_without_face=[[1300, 1599]])
    probs = np.tile([0.4, 0.2, 0.1, 0.05, 0.1, 0.05, 0.1], (1800, 1))
    probs[1200:1500] = np.nan
    out = tmp_path / "t.png"
    draw_timeline(result, out, signals=_signals(score=0.1, probs=probs))
    image = _read_png(out)
    _, rects = timeline_layout(score=True, emotions=True)
    for name, rect in rects.items():
        row, _ = _panel_rows(rect, image.shape[0])
        y = int(row(0.93))  # near the panel's top, above the score curve
        inside = image[y, int(_x_pixel(45.0, result, 1440))].astype(int)
        assert np.all((inside > 180) & (inside < 245)) and np.ptp(inside) <= 6, f"{name}: expected light grey"
        before = image[y, int(_x_pixel(38.0, result, 1440))].astype(int)
        assert not (np.all((before > 180) & (before < 245)) and np.ptp(before) <= 6), f"{name}: grey before 40 s"
        after = image[y, int(_x_pixel(52.0, result, 1440))].astype(int)
        if name != "emotions":  # there the stacked probabilities fill the panel
            assert np.all(after >= 250), f"{name}: background should be white after 50 s"


def test_timeline_ground_truth_bars_in_their_lanes(tmp_path):
    # frames 400..700 -> 10 s .. 20 s (first frame 100); "happiness" is the dataset word for positive.
    # The untyped truth lasts 10 frames = 0.33 s <= 0.5 s, so it is laned as micro.
    truths = [Interval("s15", "clip01", 400, 700, "macro", "happiness"),
              Interval("s15", "clip01", 1300, 1309, "", "surprise")]
    result = _why_result(intervals=[_iv(30.0, 35.0, "micro", "negative", 1.0)])
    out = tmp_path / "t.png"
    draw_timeline(result, out, truths=truths)
    image = _read_png(out)
    size, rects = timeline_layout(truths=True)
    assert image.shape[0] == pytest.approx(size[1] * DPI, abs=1)
    # lanes bottom to top: micro GT, micro, macro GT, macro; y from -0.5 to 3.75
    row, _ = _panel_rows(rects["intervals"], image.shape[0], -0.5, 3.75)
    right = (AXES_RECT[0] + AXES_RECT[2]) * 1440

    def lane_cols(lane_y, emotion):
        band = image[int(row(lane_y + 0.35)):int(row(lane_y - 0.35))]
        cols = _columns_with(band, emotion_bgr(emotion))
        return cols[cols < right]

    gt = lane_cols(2, "positive")
    assert gt.size, "no ground-truth bar in the macro GT lane"
    assert abs(gt.min() - _x_pixel(10.0, result, 1440)) <= 3 and abs(gt.max() - _x_pixel(20.0, result, 1440)) <= 3
    assert lane_cols(3, "positive").size == 0 and lane_cols(1, "positive").size == 0
    short = lane_cols(0, "surprise")
    assert short.size and abs(short.mean() - _x_pixel(40.15, result, 1440)) <= 3
    assert lane_cols(1, "negative").size and lane_cols(0, "negative").size == 0  # the detection stays in its lane


def test_timeline_emotion_panel_shows_the_dominant_class(tmp_path):
    # FER rows: 10-20 s happy 0.9 (MEGC: negative 4/60, positive 0.9, ...); elsewhere negative 0.8,
    # positive 0.05, surprise 0.05, others (neutral) 0.1, stacked in that order from the bottom.
    probs = np.tile([0.4, 0.2, 0.1, 0.05, 0.1, 0.05, 0.1], (1800, 1))
    probs[300:600] = [0.1 / 6, 0.1 / 6, 0.1 / 6, 0.9, 0.1 / 6, 0.1 / 6, 0.1 / 6]
    result = _why_result()
    out = tmp_path / "t.png"
    draw_timeline(result, out, signals=_signals(probs=probs))
    image = _read_png(out)
    _, rects = timeline_layout(emotions=True)
    row, _ = _panel_rows(rects["emotions"], image.shape[0])

    def colour_at(t, p):
        return image[int(row(p)), int(_x_pixel(t, result, 1440))].astype(int)

    for t, p, emotion in [(15.0, 0.5, "positive"), (40.0, 0.4, "negative"), (40.0, 0.95, "others"),
                          (40.0, 0.875, "surprise"), (15.0, 0.03, "negative")]:
        assert np.abs(colour_at(t, p) - np.array(emotion_bgr(emotion))).max() <= 12, (t, p, emotion)


def test_fer_to_megc_sums_the_groups():
    row = np.array([0.10, 0.20, 0.05, 0.30, 0.15, 0.12, 0.08])  # angry disgust fear happy sad surprise neutral
    expected = np.array([0.10 + 0.20 + 0.05 + 0.15, 0.30, 0.12, 0.08])  # negative positive surprise others
    assert fer_to_megc(row, FER7) == pytest.approx(expected)
    assert fer_to_megc(row) == pytest.approx(expected)  # default order: the mini-Xception's classes
    order = [6, 0, 5, 1, 4, 2, 3]  # the same probabilities, classes listed in another order
    assert fer_to_megc(row[order], [FER7[i] for i in order]) == pytest.approx(expected)
    batch = np.stack([row, np.full(7, np.nan), np.eye(7)[6]])
    out = fer_to_megc(batch, FER7)
    assert out.shape == (3, 4) and np.all(np.isnan(out[1])) and out[2] == pytest.approx([0, 0, 0, 1])
    assert out[0] == pytest.approx(expected)
    with pytest.raises(ValueError):
        fer_to_megc(row[:4], ["angry", "happy", "surprise", "neutral"])


def test_video_result_json_round_trip_and_old_files(tmp_path):
    result = _why_result(intervals=[DetectedInterval(400, 700, 10.0, 20.0, "macro", "positive", 0.75)],
                         frames_without_face=[[1300, 1599]], shot_cuts=[700, 1650], method="flow",
                         model={"name": "farneback", "description": "optical-flow spotter, no training"})
    path = tmp_path / "clip01.json"
    result.write_json(path)
    on_disk = json.loads(path.read_text())
    assert on_disk["method"] == "flow" and on_disk["shot_cuts"] == [700, 1650] and on_disk["first_frame"] == 100
    assert on_disk["frame_numbering"] == "the frame folder's own numbers" and on_disk["model"]["name"] == "farneback"
    assert VideoResult.read_json(path) == result

    new_keys = ("method", "model", "shot_cuts", "frame_numbering", "first_frame")
    old = {k: v for k, v in on_disk.items() if k not in new_keys}
    legacy = VideoResult.from_dict(old)
    assert legacy.method == "fedn" and legacy.model == {} and legacy.shot_cuts == [] and legacy.first_frame == 0
    assert "0-based" in legacy.frame_numbering and legacy.intervals == result.intervals

    del old["fps"]
    path.write_text(json.dumps(old))
    with pytest.raises(UserError, match=r"clip01\.json.*fps"):
        VideoResult.read_json(path)
    with pytest.raises(UserError, match="missing.json"):
        VideoResult.read_json(tmp_path / "missing.json")


def test_csv_rows_keep_the_stored_frame_numbers(tmp_path):
    result = _why_result(intervals=[DetectedInterval(400, 700, 10.0, 20.0, "macro", "positive", 0.75)])
    path = tmp_path / "clip01.csv"
    result.write_csv(path)
    lines = path.read_text().splitlines()
    assert lines[0].split(",")[:4] == ["subject", "video", "onset", "offset"]
    assert lines[1].split(",")[:4] == ["s15", "clip01", "400", "700"]


def test_signals_npz_round_trip(tmp_path):
    rng = np.random.default_rng(3)
    probs = rng.dirichlet(np.ones(7), size=50)
    probs[10:12] = np.nan
    full = TimelineSignals(np.arange(50) / 30.0, rng.uniform(size=50), "FEDN score", {"micro": 0.4, "macro": 0.6},
                           probs, FER7, frames=np.arange(100, 150))
    path = tmp_path / "clip01_signals.npz"
    full.save_npz(path)
    assert _leftovers(tmp_path, {path.name}) == []
    back = TimelineSignals.load_npz(path)
    assert np.array_equal(back.times_s, full.times_s) and np.array_equal(back.score, full.score)
    assert np.array_equal(back.emotion_probs, full.emotion_probs, equal_nan=True)
    assert back.emotion_names == FER7 and back.score_label == "FEDN score" and np.array_equal(back.frames, full.frames)
    assert back.score_threshold == {"micro": 0.4, "macro": 0.6}

    energy = TimelineSignals(np.arange(5) / 30.0, [0.0, 1.5, 9.0, np.nan, 2.0], "motion energy", 3.25)
    energy.save_npz(path)
    back = TimelineSignals.load_npz(path)
    assert back.score_threshold == 3.25 and back.emotion_probs is None and back.frames is None
    assert np.array_equal(back.score, energy.score, equal_nan=True)

    bare = TimelineSignals(np.arange(3) / 30.0)
    bare.save_npz(path)
    back = TimelineSignals.load_npz(path)
    assert back.score is None and back.score_threshold is None and len(back.times_s) == 3

    with pytest.raises(UserError, match="nothere.npz"):
        TimelineSignals.load_npz(tmp_path / "nothere.npz")
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(UserError, match="times_s"):
        TimelineSignals.load_npz(tmp_path / "other.npz")
    with pytest.raises(ValueError):
        TimelineSignals(np.arange(5), score=np.zeros(4))
