"""Frames from image folders and videos, and the OpenCV face pipeline, on media made here."""
from __future__ import annotations

import types
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

from visionattn.faces import haar as faces_module
from visionattn.data import frames as frames_module
from visionattn.faces.haar import BoxSmoother, FaceDetector, FacePipeline, FaceReport, crop_square
from visionattn.data.frames import expand_ranges, index_ranges, iter_frames, probe
from visionattn.utils import UserError

ASTRONAUT = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)  # (512, 512, 3)
# Eileen Collins' face in astronaut() as (x, y, w, h), measured by eye on the photo.
TRUE_FACE = (175, 60, 100, 105)
# Head and shoulders only: the Haar cascade also fires on the shuttle at the right of the photo.
HEAD_X0, HEAD = 40, ASTRONAUT[0:300, 40:340]
PATCH = 200  # the head shrunk to this side (face about 67 px) and pasted on a 320 x 240 canvas
PATCH_FACE_CENTRE = (
    (TRUE_FACE[0] - HEAD_X0 + TRUE_FACE[2] / 2) * PATCH / 300,
    (TRUE_FACE[1] + TRUE_FACE[3] / 2) * PATCH / 300,
)
CANVAS_HW = (240, 320)


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector()


def face_frame(x: int, y: int) -> np.ndarray:
    """A 240 x 320 black frame with the shrunk head's top-left corner at (x, y), clipped."""
    canvas = np.zeros(CANVAS_HW + (3,), np.uint8)
    patch = cv2.resize(HEAD, (PATCH, PATCH), interpolation=cv2.INTER_AREA)
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + PATCH, CANVAS_HW[1]), min(y + PATCH, CANVAS_HW[0])
    canvas[y0:y1, x0:x1] = patch[y0 - y : y1 - y, x0 - x : x1 - x]
    return canvas


def blank_frame() -> np.ndarray:
    return np.zeros(CANVAS_HW + (3,), np.uint8)


def coffee_frame() -> np.ndarray:
    coffee = cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR)
    return cv2.resize(coffee, (CANVAS_HW[1], CANVAS_HW[0]), interpolation=cv2.INTER_AREA)


def write_video(path: Path, frames: list[np.ndarray], fps: float = 25.0, fourcc: str = "MJPG") -> Path:
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (width, height))
    assert writer.isOpened()
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def centres(crops) -> np.ndarray:
    return np.array([(c.box[0] + c.box[2] / 2, c.box[1] + c.box[3] / 2) for c in crops])


def overlap(a, b) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


# ---------------------------------------------------------------- frames


def test_image_folder_natural_order_gaps_and_case(tmp_path: Path) -> None:
    numbers = {"img7.PNG": 7, "img10.JPG": 10, "img9.jpeg": 9, "img100.Bmp": 100, "img46.jpg": 46}
    for name, number in numbers.items():
        cv2.imwrite(str(tmp_path / name), np.full((6, 8, 3), number, np.uint8))
    (tmp_path / "notes.txt").write_text("not a frame")

    info = probe(tmp_path, fps=25)
    assert (info.kind, info.fps, info.frame_count, info.width, info.height) == ("images", 25.0, 5, 8, 6)
    assert info.frame_numbers == [7, 9, 10, 46, 100]
    got = [(index, int(image[0, 0, 1])) for index, image in iter_frames(tmp_path)]
    # Every image is filled with its own number (lossy JPEG may be off by one).
    assert [i for i, _ in got] == [7, 9, 10, 46, 100]
    assert all(abs(value - index) <= 1 for index, value in got)
    assert probe(tmp_path).fps == 30.0


def test_zero_padded_names_and_positional_slicing(tmp_path: Path) -> None:
    for n in range(46, 56):
        cv2.imwrite(str(tmp_path / f"reg_img{n:05d}.png"), np.full((4, 4, 3), n, np.uint8))
    assert [i for i, _ in iter_frames(tmp_path)] == list(range(46, 56))
    # start/stop/step count positions, not file numbers.
    assert [i for i, _ in iter_frames(tmp_path, start=2, stop=8, step=3)] == [48, 51]


def test_iter_frames_is_lazy_and_names_bad_image(tmp_path: Path) -> None:
    for n in (1, 2, 3):
        cv2.imwrite(str(tmp_path / f"img{n}.png"), np.zeros((4, 4, 3), np.uint8))
    frames = iter_frames(tmp_path)
    assert isinstance(frames, types.GeneratorType)
    assert next(frames)[0] == 1
    # Frames are decoded one per next(): damage done now shows up only when reached.
    (tmp_path / "img3.png").write_bytes(b"not a png")
    assert next(frames)[0] == 2
    with pytest.raises(UserError, match="img3.png"):
        next(frames)


def test_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="nowhere"):
        iter_frames(tmp_path / "nowhere")
    with pytest.raises(UserError, match="nowhere"):
        probe(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="empty.*no images"):
        probe(tmp_path / "empty")
    (tmp_path / "dup").mkdir()
    for name in ("img1.png", "img01.png"):
        cv2.imwrite(str(tmp_path / "dup" / name), np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(UserError, match="frame number 1"):
        probe(tmp_path / "dup")


@pytest.mark.parametrize(("name", "fourcc"), [("clip.avi", "MJPG"), ("clip.mp4", "mp4v")])
def test_video_probe_and_frames(tmp_path: Path, name: str, fourcc: str) -> None:
    frames = [np.full((48, 64, 3), 20 * i, np.uint8) for i in range(12)]
    path = write_video(tmp_path / name, frames, fps=25.0, fourcc=fourcc)
    info = probe(path)
    assert (info.kind, info.fps, info.frame_count, info.width, info.height) == ("video", 25.0, 12, 64, 48)
    assert info.frame_numbers is None
    got = list(iter_frames(path))
    assert [i for i, _ in got] == list(range(12))
    assert all(image.shape == (48, 64, 3) and image.dtype == np.uint8 for _, image in got)
    assert [round(float(np.median(image)) / 20) for _, image in got] == list(range(12))
    assert [i for i, _ in iter_frames(path, start=3, stop=10, step=3)] == [3, 6, 9]


@pytest.mark.parametrize("reported_fps", [0.0, float("nan"), 90000.0])
def test_video_without_metadata_falls_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reported_fps: float
) -> None:
    path = write_video(tmp_path / "clip.avi", [np.zeros((48, 64, 3), np.uint8)] * 9)
    real_capture = cv2.VideoCapture

    class NoMetadata:
        """A capture whose container reports no frame count and a useless frame rate."""

        def __init__(self, name: str) -> None:
            self._cap = real_capture(name)

        def get(self, prop: int) -> float:
            return {cv2.CAP_PROP_FPS: reported_fps, cv2.CAP_PROP_FRAME_COUNT: -1.0}.get(prop, self._cap.get(prop))

        def __getattr__(self, name: str):
            return getattr(self._cap, name)

    monkeypatch.setattr(frames_module.cv2, "VideoCapture", NoMetadata)
    info = probe(path, fps=12.5)
    assert (info.fps, info.frame_count) == (12.5, 9)


def test_corrupt_and_non_video_files(tmp_path: Path) -> None:
    corrupt = tmp_path / "random.mp4"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    text = tmp_path / "notes.txt"
    text.write_text("hello, not a video\n")
    for path in (corrupt, text):
        with pytest.raises(UserError, match=f"{path.name}.*not a video or corrupt"):
            probe(path)
        with pytest.raises(UserError, match=path.name):
            list(iter_frames(path))


def test_truncated_video_ends_with_warning(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    # Noise compresses badly, so the cut falls well inside the frame data.
    frames = [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(40)]
    path = write_video(tmp_path / "full.avi", frames)
    cut = tmp_path / "cut.avi"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.warns(RuntimeWarning, match="cut.avi.*ended after"):
        got = [i for i, _ in iter_frames(cut)]
    assert 0 < len(got) < 40 and got == list(range(len(got)))


def test_index_ranges_round_trip() -> None:
    assert index_ranges([10, 11, 12, 13, 14, 30]) == [[10, 14], [30, 30]]
    assert index_ranges([]) == []
    assert expand_ranges([[10, 14], [30, 30]]) == [10, 11, 12, 13, 14, 30]


# ---------------------------------------------------------------- faces


def test_detector_finds_astronaut_face(detector: FaceDetector) -> None:
    box = detector.detect(ASTRONAUT)
    assert box is not None and overlap(box, TRUE_FACE) > 0.5
    assert detector.detect(cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR)) is None
    assert detector.detect(blank_frame()) is None


def test_pipeline_crop_on_photo(detector: FaceDetector) -> None:
    pipeline = FacePipeline(size=112, detector=detector)
    (crop,) = pipeline.process([(0, ASTRONAUT)])
    assert crop.image.shape == (112, 112, 3) and crop.image.dtype == np.uint8
    assert crop.detected and pipeline.report.face_found and pipeline.report.missing == []
    # The margin and squaring only grow the face box, so the true face sits inside the crop box.
    x, y, side, _ = crop.box
    assert x <= TRUE_FACE[0] + 10 and y <= TRUE_FACE[1] + 10
    assert x + side >= TRUE_FACE[0] + TRUE_FACE[2] - 10 and y + side >= TRUE_FACE[1] + TRUE_FACE[3] - 10


def test_missing_cascade_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(faces_module.cv2.data, "haarcascades", str(tmp_path) + "/")
    with pytest.raises(UserError, match="opencv-python 4"):
        FaceDetector()


def test_box_follows_moving_face(detector: FaceDetector) -> None:
    frames = [(i, face_frame(20 + 4 * i, 0)) for i in range(20)]
    crops = list(FacePipeline(smoothing=0.6, detector=detector).process(frames))
    assert all(c.detected for c in crops)
    xs = centres(crops)[:, 0]
    truth = np.array([20 + 4 * i + PATCH_FACE_CENTRE[0] for i in range(20)])
    assert np.all(np.diff(xs) > -2)
    # A moving average lags by smoothing / (1 - smoothing) * speed = 6 px once settled.
    assert np.all(np.abs(xs - truth)[5:] < 12)


def test_smoothing_reduces_jitter(detector: FaceDetector) -> None:
    rng = np.random.default_rng(1)
    frames = [(i, face_frame(60 + dx, dy)) for i, (dx, dy) in enumerate(rng.integers(-5, 6, (30, 2)))]

    def spread(smoothing: float) -> float:
        crops = list(FacePipeline(smoothing=smoothing, detector=detector).process(frames))
        assert all(c.detected for c in crops)
        return float(centres(crops)[5:].var(axis=0).sum())

    assert spread(0.6) < 0.6 * spread(0.0)


def test_misses_carry_last_box_and_are_reported_as_ranges(detector: FaceDetector) -> None:
    face, blank = face_frame(60, 0), blank_frame()
    frames = [(i, face if i < 10 or 15 <= i < 20 else blank) for i in range(21)]
    pipeline = FacePipeline(detector=detector)
    crops = list(pipeline.process(frames))
    assert [c.index for c in crops] == list(range(21))
    assert [c.detected for c in crops] == [not (10 <= i < 15 or i == 20) for i in range(21)]
    assert all(c.box == crops[9].box for c in crops[10:15])
    assert crops[20].box == crops[19].box
    report = pipeline.report
    assert report.missing_ranges == [[10, 14], [20, 20]]
    assert report.frames_seen == 21 and report.face_found and report.first_face_index == 0
    assert FaceReport.from_dict(report.to_dict()) == report


def test_frames_before_first_face_use_first_box(detector: FaceDetector) -> None:
    frames = [(100 + i, blank_frame() if i < 5 else face_frame(60, 0)) for i in range(8)]
    pipeline = FacePipeline(detector=detector)
    crops = list(pipeline.process(frames))
    assert [c.index for c in crops] == list(range(100, 108))
    assert [c.detected for c in crops] == [False] * 5 + [True] * 3
    assert all(c.box == crops[5].box for c in crops[:5])
    assert pipeline.report.first_face_index == 105
    assert pipeline.report.missing_ranges == [[100, 104]] and pipeline.report.centred == []


def test_no_face_at_all(detector: FaceDetector) -> None:
    frames = [(i, coffee_frame() if i % 2 else blank_frame()) for i in range(10)]
    pipeline = FacePipeline(size=64, detector=detector)
    crops = list(pipeline.process(frames))
    assert len(crops) == 10
    assert all(c.image.shape == (64, 64, 3) and not c.detected for c in crops)
    # The centred fallback square spans the frame's shorter side.
    assert all(c.box == (40.0, 0.0, 240.0, 240.0) for c in crops)
    report = pipeline.report
    assert not report.face_found and report.missing_ranges == [[0, 9]] and report.centred == list(range(10))


def test_held_back_frames_are_bounded(detector: FaceDetector) -> None:
    consumed = []

    def frames():
        for i in range(20):
            consumed.append(i)
            yield i, blank_frame()

    first = next(FacePipeline(max_pending=3, detector=detector).process(frames()))
    # Without a face, at most max_pending + 1 frames are held before crops flow out centred.
    assert first.index == 0 and len(consumed) == 4


def test_crops_are_square_at_the_border(detector: FaceDetector) -> None:
    pipeline = FacePipeline(size=96, margin=0.4, detector=detector)
    # Face pushed off the top-left corner: the enlarged square leaves the image.
    (crop,) = pipeline.process([(0, face_frame(-80, -30))])
    assert crop.detected and crop.image.shape == (96, 96, 3)
    x, y, side, _ = crop.box
    assert x < 0 or y < 0
    # Padding is black and the box was not shrunk to fit.
    if x < 0:
        assert crop.image[:, 0].max() == 0
    assert side >= 1.7 * 40


@pytest.mark.parametrize("box", [(-30, -30, 50), (290, 200, 60), (-10, 100, 400), (400, 400, 10), (10, 10, 100)])
def test_crop_square_pads_and_keeps_size(box: tuple[int, int, int]) -> None:
    frame = np.full(CANVAS_HW + (3,), 200, np.uint8)
    x0, y0, side = box
    crop = crop_square(frame, x0, y0, side, 37)
    assert crop.shape == (37, 37, 3) and crop.dtype == np.uint8
    inside = (min(x0 + side, 320) - max(x0, 0)) > 0 and (min(y0 + side, 240) - max(y0, 0)) > 0
    assert crop.max() == (200 if inside else 0)


def test_detect_every_reuses_box(detector: FaceDetector) -> None:
    calls = []

    class Counting:
        def detect(self, frame):
            calls.append(1)
            return detector.detect(frame)

    frames = [(i, face_frame(60 + i, 0)) for i in range(7)]
    crops = list(FacePipeline(detect_every=3, detector=Counting()).process(frames))
    assert len(calls) == 3 and len(crops) == 7
    assert crops[1].box == crops[0].box and crops[2].box == crops[0].box and crops[3].box != crops[0].box


def test_smoother_rejects_single_outliers_but_follows_real_jumps() -> None:
    smoother = BoxSmoother(alpha=0.5, max_jump=0.5)
    assert smoother.box is None and not smoother.update(None)
    assert smoother.update((100, 100, 40, 40))
    assert not smoother.update((300, 100, 40, 40))  # one-frame false positive
    assert smoother.box == (100, 100, 40, 40)
    assert smoother.update((102, 100, 40, 40))
    assert smoother.box == (101, 100, 40, 40)
    assert not smoother.update((101, 100, 120, 120))  # size tripled in one frame
    assert not smoother.update((300, 100, 40, 40))
    assert smoother.update((304, 100, 40, 40))  # it stayed there: the face moved
    assert smoother.box == (304, 100, 40, 40)
