"""On-disk per-video array caches: keys, round trips, interrupted and resumed writes."""
from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
import pytest
from skimage import data

from visionattn.data.cache import ArrayCache, cache_face_crops, settings_key
from visionattn.faces.haar import FaceDetector, FacePipeline
from visionattn.utils import UserError

SETTINGS = {"size": 112, "margin": 0.2, "model": "crops"}
N, TAIL = 20, (3, 4)
EXPECTED = np.arange(N * 12, dtype=np.float32).reshape(N, *TAIL)


class Interrupted(Exception):
    pass


def chunks(start: int = 0, size: int = 3, fail_at: int | None = None, log: list | None = None) -> Iterator[np.ndarray]:
    """Rows ``start..N`` of ``EXPECTED`` in chunks of ``size``; raises before row ``fail_at``."""
    for begin in range(start, N, size):
        if fail_at is not None and begin >= fail_at:
            raise Interrupted
        if log is not None:
            log.append(begin)
        yield EXPECTED[begin : begin + size]


def interrupted_write(cache: ArrayCache, fail_at: int = 10) -> None:
    with pytest.raises(Interrupted):
        cache.write("clip", TAIL, np.float32, N, chunks(fail_at=fail_at))


def test_settings_key_is_stable_and_tracks_settings(tmp_path: Path) -> None:
    assert settings_key({"a": 1, "b": [1, 2]}) == settings_key({"b": [1, 2], "a": 1})
    assert settings_key({"a": 1}) != settings_key({"a": 2})
    pipeline_settings = FacePipeline(size=64).settings()
    assert settings_key(pipeline_settings) != settings_key(FacePipeline(size=64, margin=0.3).settings())
    a, b = ArrayCache(tmp_path, SETTINGS), ArrayCache(tmp_path, {**SETTINGS, "size": 64})
    assert a.path("clip") == tmp_path / a.key / "clip.npy" and a.key != b.key
    a.write("clip", TAIL, np.float32, N, chunks())
    assert json.loads((tmp_path / a.key / "settings.json").read_text()) == SETTINGS
    assert not b.exists("clip")


def test_feature_key_follows_the_landmark_front_end(monkeypatch) -> None:
    """Rows made by another face front end (here: supporting detections on the whole frame) are
    not reused, though no field of the feature settings changed; the Haar recipe's key stays."""
    from visionattn.faces import tracking
    from visionattn.features.settings import FeatureSettings

    landmarks, haar = FeatureSettings(), FeatureSettings(front_end="haar", streams=("encoder",))
    before = settings_key(landmarks.key_settings()), settings_key(haar.key_settings())
    assert settings_key(FeatureSettings().key_settings()) == before[0]
    original = tracking.TrackerSettings
    monkeypatch.setattr(tracking, "TrackerSettings", lambda **kw: original(**{"support_region": 0, **kw}))
    assert settings_key(landmarks.key_settings()) != before[0]
    assert settings_key(haar.key_settings()) == before[1]


def test_round_trip_is_memory_mapped(tmp_path: Path) -> None:
    cache = ArrayCache(tmp_path, SETTINGS)
    assert not cache.exists("clip")
    written = cache.write("clip", TAIL, np.float32, N, chunks(size=7))
    loaded = cache.load("clip")
    assert isinstance(loaded, np.memmap) and not loaded.flags.writeable
    np.testing.assert_array_equal(loaded, EXPECTED)
    np.testing.assert_array_equal(written, EXPECTED)
    assert type(cache.load("clip", mmap=False)) is np.ndarray
    assert sorted(p.name for p in cache.folder.iterdir()) == ["clip.npy", "settings.json"]
    cache.write_meta("clip", {"fps": 25.0})
    assert cache.load_meta("clip") == {"fps": 25.0}


def test_interrupted_write_resumes_from_recorded_row(tmp_path: Path) -> None:
    cache = ArrayCache(tmp_path, SETTINGS)
    interrupted_write(cache, fail_at=10)
    assert not cache.exists("clip")
    progress = json.loads((cache.folder / "clip.npy.progress.json").read_text())
    assert progress["rows"] == 12  # chunks 0, 3, 6, 9 made it to disk
    log: list[int] = []
    with cache.writer("clip", TAIL, np.float32, N) as writer:
        assert writer.start_row == 12
        for chunk in chunks(start=writer.start_row, log=log):
            writer.append(chunk)
    assert log == [12, 15, 18]
    np.testing.assert_array_equal(cache.load("clip"), EXPECTED)
    assert sorted(p.name for p in cache.folder.iterdir()) == ["clip.npy", "settings.json"]


def test_write_skips_rows_already_on_disk(tmp_path: Path) -> None:
    cache = ArrayCache(tmp_path, SETTINGS)
    interrupted_write(cache, fail_at=5)
    # Different chunking on the second run: rows are skipped, not chunks.
    np.testing.assert_array_equal(cache.write("clip", TAIL, np.float32, N, chunks(size=4)), EXPECTED)


@pytest.mark.parametrize(
    ("n_frames", "tail", "dtype"), [(N + 1, TAIL, np.float32), (N, (4, 3), np.float32), (N, TAIL, np.float64)]
)
def test_mismatched_progress_is_discarded(tmp_path: Path, n_frames: int, tail: tuple, dtype: type) -> None:
    cache = ArrayCache(tmp_path, SETTINGS)
    interrupted_write(cache)
    with pytest.warns(RuntimeWarning, match="starting over"):
        writer = cache.writer("clip", tail, dtype, n_frames)
    assert writer.start_row == 0
    writer.close()


def test_corrupt_or_foreign_progress_is_discarded(tmp_path: Path) -> None:
    cache = ArrayCache(tmp_path, SETTINGS)
    progress = cache.folder / "clip.npy.progress.json"
    interrupted_write(cache)
    record = json.loads(progress.read_text())
    progress.write_text(json.dumps({**record, "settings_key": "0" * 16}))
    with pytest.warns(RuntimeWarning, match="starting over"):
        cache.writer("clip", TAIL, np.float32, N).close()
    progress.write_text("{ not json")
    with pytest.warns(RuntimeWarning, match="starting over"):
        np.testing.assert_array_equal(cache.write("clip", TAIL, np.float32, N, chunks()), EXPECTED)


def test_short_write_is_not_published_unless_truncated(tmp_path: Path) -> None:
    cache = ArrayCache(tmp_path, SETTINGS)
    with pytest.raises(ValueError, match="15 rows, expected 20"):
        cache.write("clip", TAIL, np.float32, N, itertools.islice(chunks(), 5))
    assert not cache.exists("clip")
    with cache.writer("clip", TAIL, np.float32, N) as writer:
        assert writer.start_row == 15
        short = writer.finish(truncate=True)
    np.testing.assert_array_equal(short, EXPECTED[:15])
    with pytest.raises(ValueError, match="exceed"):
        cache.writer("other", TAIL, np.float32, 2).append(EXPECTED[:3])


def test_bad_ids_and_missing_entries(tmp_path: Path) -> None:
    cache = ArrayCache(tmp_path, SETTINGS)
    for bad in ("", "a/b", "../up", ".hidden"):
        with pytest.raises(UserError):
            cache.path(bad)
    with pytest.raises(UserError, match="nothing.npy"):
        cache.load("nothing")
    with pytest.raises(UserError, match="nothing.json"):
        cache.load_meta("nothing")


# ---------------------------------------------------------------- face crops end to end


def face_folder(folder: Path) -> Path:
    """Ten frames: two blank, then the astronaut's head sliding right (img5.png ... img14.png)."""
    head = cv2.resize(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)[0:300, 40:340], (200, 200))
    folder.mkdir()
    for i in range(10):
        frame = np.zeros((240, 320, 3), np.uint8)
        if i >= 2:
            frame[20:220, 10 + 5 * i : 210 + 5 * i] = head
        cv2.imwrite(str(folder / f"img{i + 5}.png"), frame)
    return folder


class FailingDetector:
    """Wraps a detector and raises on its ``fail_on``-th call, like a job killed mid-way."""

    def __init__(self, detector: FaceDetector, fail_on: int | None = None) -> None:
        self.detector, self.fail_on, self.calls = detector, fail_on, 0

    def detect(self, frame: np.ndarray):
        self.calls += 1
        if self.calls == self.fail_on:
            raise Interrupted
        return self.detector.detect(frame)


def test_cache_face_crops_resumes_to_the_same_result(tmp_path: Path) -> None:
    source, detector = face_folder(tmp_path / "frames"), FaceDetector()
    reference, reference_report = cache_face_crops(
        source, ArrayCache(tmp_path / "a", SETTINGS), "clip", FacePipeline(size=48, detector=detector), chunk=3
    )
    assert reference.shape == (10, 48, 48, 3) and reference.dtype == np.uint8
    assert reference_report.first_face_index == 7 and reference_report.missing_ranges == [[5, 6]]

    cache = ArrayCache(tmp_path / "b", SETTINGS)
    with pytest.raises(Interrupted):
        cache_face_crops(source, cache, "clip", FacePipeline(size=48, detector=FailingDetector(detector, 8)), chunk=3)
    assert not cache.exists("clip")
    resumed_detector = FailingDetector(detector)
    crops, report = cache_face_crops(source, cache, "clip", FacePipeline(size=48, detector=resumed_detector), chunk=3)
    assert resumed_detector.calls == 4  # rows 0-5 came from the first run
    np.testing.assert_array_equal(crops, reference)
    assert report == reference_report

    meta = cache.load_meta("clip")
    assert meta["frame_ranges"] == [[5, 14]] and meta["fps"] == 30.0 and meta["faces"]["face_found"]
    # A finished cache is read back without running the pipeline at all.
    unused = FailingDetector(detector, fail_on=1)
    again, again_report = cache_face_crops(source, cache, "clip", FacePipeline(size=48, detector=unused))
    np.testing.assert_array_equal(again, reference)
    assert again_report == reference_report and unused.calls == 0


def test_cache_face_crops_keeps_what_a_truncated_video_had(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / "full.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (64, 48))
    for _ in range(40):
        writer.write(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
    writer.release()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    cache = ArrayCache(tmp_path / "cache", SETTINGS)
    with pytest.warns(RuntimeWarning, match="ended after"):
        crops, report = cache_face_crops(cut, cache, "cut", FacePipeline(size=32))
    assert 0 < len(crops) < 40 and crops.shape[1:] == (32, 32, 3)
    assert not report.face_found and report.frames_seen == len(crops)
    assert cache.load_meta("cut")["frame_count"] == len(crops)
