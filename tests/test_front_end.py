"""The landmark face front end (visionattn.features.front_end): its motion stream runs on a second
thread, so its output is checked against the tracker and the motion stream run one after the
other, and an interrupted extraction must resume to the same rows."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from visionattn.data.cache import ArrayCache, cache_face_rows
from visionattn.data.frames import iter_frames
from visionattn.faces import FaceTracker
from visionattn.features import front_end as fe
from visionattn.features.front_end import LandmarkFrontEnd
from visionattn.features.motion import FacialMotionStream

from media import carphone_or_skip


@pytest.fixture(scope="module")
def carphone() -> Path:
    return carphone_or_skip()


def _inline(video: Path) -> list[tuple[bool, bool, np.ndarray, bool]]:
    """``(present, cut, motion, motion_valid)`` per frame: the tracker, then the motion stream, on
    one thread."""
    stream = FacialMotionStream(fps=30.0, interval_s=0.2)
    out = []
    for t, obs in enumerate(FaceTracker().process(iter_frames(video))):
        grey = cv2.cvtColor(obs.aligned, cv2.COLOR_BGR2GRAY) if obs.has_face else None
        motion, valid = stream.push(t, grey, obs.aligned_landmarks if obs.has_face else None, obs.cut)
        out.append((obs.has_face, obs.cut, motion, valid))
    return out


@pytest.mark.parametrize("queue", [32, 3])
def test_front_end_equals_tracker_then_motion_on_one_thread(carphone, monkeypatch, queue):
    monkeypatch.setattr(fe, "MOTION_QUEUE", queue)
    reference = _inline(carphone)
    front = LandmarkFrontEnd()
    items = list(front.process(iter_frames(carphone)))
    assert [i.index for i in items] == list(range(120))
    assert sum(valid for *_, valid in reference) > 90
    for item, (present, cut, motion, valid) in zip(items, reference):
        assert (item.present, item.cut, item.motion_valid) == (present, cut, valid)
        np.testing.assert_array_equal(item.motion, motion)
        assert item.image.shape == (112, 112, 3) and (item.image.any() == present)
    assert front.in_sync


class Interrupted(Exception):
    pass


def _rows(items: list, fail_on: int = 0, calls: list | None = None) -> np.ndarray:
    """A row per frame: the motion, its flag and the face flag (what a cache keeps of the front end)."""
    if calls is not None:
        calls.append(len(items))
        if fail_on and len(calls) == fail_on:
            raise Interrupted
    return np.stack([np.r_[i.motion, float(i.motion_valid), float(i.present)] for i in items]).astype(np.float32)


def test_interrupted_extraction_resumes_to_the_same_rows(carphone, tmp_path, monkeypatch):
    monkeypatch.setattr(fe, "MOTION_QUEUE", 8)  # several points in sync within 120 frames
    settings = {"front_end": "test"}
    reference, _ = cache_face_rows(carphone, ArrayCache(tmp_path / "a", settings), "clip", LandmarkFrontEnd(),
                                   _rows, (29,), np.float32, chunk=16)
    assert reference.shape == (120, 29)

    cache = ArrayCache(tmp_path / "b", settings)
    first: list = []
    with pytest.raises(Interrupted):
        cache_face_rows(carphone, cache, "clip", LandmarkFrontEnd(), lambda items: _rows(items, 3, first),
                        (29,), np.float32, chunk=16)
    assert not cache.exists("clip")
    second: list = []
    rows, report = cache_face_rows(carphone, cache, "clip", LandmarkFrontEnd(),
                                   lambda items: _rows(items, 0, second), (29,), np.float32, chunk=16)
    assert sum(second) < 120  # the rows of the first two chunks came from the interrupted run
    np.testing.assert_array_equal(rows, reference)
    assert report.face_frames >= 110


def test_state_is_refused_while_motion_is_in_flight(carphone):
    front = LandmarkFrontEnd()
    frames = iter_frames(carphone)
    stream = front.process(frames)
    next(stream)  # the first face handed over: the others of its queue still wait
    assert not front.in_sync
    with pytest.raises(RuntimeError, match="in_sync"):
        front.state_dict()
    stream.close()
