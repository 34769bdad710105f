"""The timeline PNG and the annotated mp4 written next to ``visionattn detect``'s results."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data as skdata

import visionattn.inference.annotate as annotate_mod
from visionattn.inference.annotate import write_annotated
from visionattn.inference.result import DetectedInterval, VideoResult
from visionattn.inference.timeline import (
    AXES_RECT,
    EMOTION_COLORS,
    draw_timeline,
    emotion_bgr,
    time_extent,
)
from visionattn.utils import UserError

W, H, FPS, N = 160, 120, 25.0, 40


def _result(intervals=(), without_face=(), face_found=True, duration=60.0, fps=30.0, **kw) -> VideoResult:
    return VideoResult(
        video="/videos/clip01.mp4", fps=fps, frame_count=int(round(duration * fps)), duration_s=duration,
        width=kw.pop("width", 640), height=kw.pop("height", 480), face_found=face_found,
        intervals=list(intervals), frames_without_face=[list(r) for r in without_face], threshold={"micro": 0.5, "macro": 0.5},
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
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (W, H))
    assert writer.isOpened()
    for i in range(N):
        writer.write(np.roll(base, i, axis=1))
    writer.release()
    return path


def _decode(path) -> list:
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
        intervals=list(intervals), frames_without_face=[list(r) for r in without_face], threshold={"micro": 0.5, "macro": 0.5},
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
    real = annotate_mod.iter_frames

    def failing(source, *args, **kwargs):
        for index, frame in real(source, *args, **kwargs):
            if index == 12:
                raise RuntimeError("decoder died")
            yield index, frame

    monkeypatch.setattr(annotate_mod, "iter_frames", failing)
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

    monkeypatch.setattr(annotate_mod, "iter_frames", failing)
    with pytest.raises(RuntimeError):
        write_annotated(source_video, _video_result(), _boxes(0), out, progress=False)
    assert out.read_bytes() == b"previous"
    assert _leftovers(tmp_path, {out.name}) == []


def test_annotated_video_unwritable_raises_user_error(tmp_path, source_video, monkeypatch):
    class Closed:
        def __init__(self, *args, **kwargs):
            pass

        def isOpened(self):
            return False

        def release(self):
            pass

    monkeypatch.setattr(annotate_mod.cv2, "VideoWriter", Closed)
    out = tmp_path / "a.mp4"
    with pytest.raises(UserError, match="a.mp4"):
        write_annotated(source_video, _video_result(), _boxes(0), out, progress=False)
    assert list(tmp_path.iterdir()) == []
