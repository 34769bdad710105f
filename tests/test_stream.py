"""The one video -> face -> rows stream (visionattn.data.stream): training rows (the feature
cache) and detection rows (scan_video) are the same rows for the same video."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from visionattn.data.cache import ArrayCache, cache_face_rows
from visionattn.data.frames import expand_ranges, probe
from visionattn.data.stream import model_rate_frames
from visionattn.features.contract import FeatureContract
from visionattn.features.extraction import FrameFeatureExtractor
from visionattn.features.settings import FeatureSettings
from visionattn.inference.detector import scan_video

from media import carphone_or_skip, write_video


def test_cache_rows_are_the_rows_detect_consumes(tmp_path: Path) -> None:
    carphone = carphone_or_skip()  # 29.97 fps: both resample it onto the 30 fps grid
    contract = FeatureContract(FeatureSettings(front_end="landmarks", streams=("motion", "appearance")), 30.0)
    extractor = FrameFeatureExtractor(contract.settings)
    batch = 256  # one batch each, so the networks see the same batch
    cache = ArrayCache(tmp_path / "cache", contract.cache_key())
    cached, report = cache_face_rows(carphone, cache, "clip", contract.face_pipeline(), extractor, (extractor.dim,),
                                     extractor.dtype, chunk=batch, source_fps=30.0, model_fps=contract.model_fps)
    consumed: list = []
    scan = scan_video(str(carphone), contract, extractor, batch, consumed.append, progress=False)
    detected = np.concatenate(consumed).astype(extractor.dtype)
    assert len(cached) == scan.steps == 120  # 4 s at 30 fps; the 29.97 fps clip has 120 frames
    np.testing.assert_array_equal(np.asarray(cached), detected)
    assert expand_ranges(cache.load_meta("clip")["frame_ranges"]) == scan.steps_source
    assert report.face_found == scan.face_found


def test_model_rate_frames_steps_times_and_resume(tmp_path: Path) -> None:
    # 20 frames at 10 fps onto a 30 fps grid: step k shows the frame nearest k / 30 s, frame
    # round(k / 3) (never a tie), and the last frame (1.9 s) lasts half a grid period past its
    # time: steps while k / 30 < 1.9 + 1 / 60, k = 0 .. 57
    frames = [np.full((16, 16, 3), 10 * n, np.uint8) for n in range(20)]
    video = write_video(tmp_path / "ten.mp4", frames, fps=10.0)
    info = probe(video)
    steps = list(model_rate_frames(info, 30.0))
    assert [s for s, _, _, _ in steps] == list(range(58))
    sources = [i for _, i, _, _ in steps]
    assert sources == [min(round(k / 3), 19) for k in range(58)]
    assert [t for _, _, t, _ in steps] == pytest.approx([i / 10.0 for i in sources])  # the shown frame's time
    resumed = list(model_rate_frames(info, 30.0, start=7, stop=30))
    assert [(s, i) for s, i, _, _ in resumed] == [(s, i) for s, i, _, _ in steps[:30]]
    assert all(img is None for _, _, _, img in resumed[:7]) and all(img is not None for _, _, _, img in resumed[7:])
    # no model rate: frame by frame
    assert [i for _, i, _, _ in model_rate_frames(info, None)] == list(range(20))
