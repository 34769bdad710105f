"""SAMM-LV training at a lower rate than the dataset's: 200 fps videos, FEDN at 30 fps.

The replica follows shared/reference/fedn.md ("Datasets", SAMM-LV): frames
``SAMM_longvideos/006_1/006_1_0001.jpg`` (4-digit numbers from 1), 200 fps, and the
workbook written by test_samm's ``write_samm`` (sheet FACS_Movement_Only, title and notes in
rows 1-9, header in row 10, Subject a number (6) while folders are zero-padded, Filename
``006_1_3``, types ``Macro`` / ``Micro - 1/2``, decimal frame numbers, apex -1, onset 0). The
faces are rendered by visionattn.data.synthetic at 200 fps, so the expressions are real
deformations at the workbook's frames.

Independent statement of the resampling (nearest frame in time): row k of a video resampled
from 200 to 30 fps shows the source frame nearest to k/30 s, the 0-based frame
round(k * 200 / 30) (never a tie: k * 20 / 3 has a fractional part 0, 1/3 or 2/3), i.e. the
1-based file number round(k * 20 / 3) + 1, clamped to the last frame; rows continue while a
source frame is the nearest, about T * 30 / 200 of them.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data as skdata

from test_samm import write_samm
from visionattn.cli import main
from visionattn.data.cache import ArrayCache, cache_face_rows
from visionattn.data.frames import expand_ranges
from visionattn.evaluation import read_intervals_csv

REPO = Path(__file__).resolve().parents[1]
SAMM_FPS, MODEL_FPS = 200, 30


def nearest_source_frame(k: int, n_frames: int) -> int:
    """1-based file number of the 200 fps frame nearest to k / 30 s (see the module notes)."""
    return min(round(k * SAMM_FPS / MODEL_FPS), n_frames - 1) + 1


# ---------------------------------------------------------------- resampling a frame folder

def _block_value(digit: int) -> int:
    return digit * 16 + 8  # 16 levels apart: JPEG's error on a flat 8x8 block is far below 8


def number_image(n: int) -> np.ndarray:
    """A 16x16 image that shows the number ``n`` (< 256) in two flat 8x8 blocks (JPEG-proof)."""
    img = np.zeros((16, 16, 3), np.uint8)
    img[:, :8] = _block_value(n // 16)
    img[:, 8:] = _block_value(n % 16)
    return img


def read_number(img: np.ndarray) -> int:
    hi, lo = (int(round((float(img[4:12, c:c + 8].mean()) - 8) / 16)) for c in (0, 8))
    return hi * 16 + lo


@dataclass
class _Item:
    image: np.ndarray


class _Report:
    frames = 0

    def to_dict(self) -> dict:
        return {"frames": self.frames}

    @classmethod
    def from_dict(cls, d: dict) -> "_Report":
        r = cls()
        r.frames = d["frames"]
        return r


class PassThrough:
    """The least a face front end is for cache_face_rows: every frame is its own crop."""

    in_sync = True

    def __init__(self) -> None:
        self.report = _Report()

    def process(self, frames):
        for _, image in frames:
            self.report.frames += 1
            yield _Item(image)

    def state_dict(self) -> dict:
        return self.report.to_dict()

    def load_state_dict(self, state: dict) -> None:
        self.report = _Report.from_dict(state)


@pytest.mark.parametrize("n_frames", [101, 100, 45])
def test_200fps_folder_resampled_to_30fps_keeps_nearest_source_frames(tmp_path: Path, n_frames: int) -> None:
    folder = tmp_path / "SAMM_longvideos" / "006_1"
    folder.mkdir(parents=True)
    for n in range(1, n_frames + 1):
        cv2.imwrite(str(folder / f"006_1_{n:04d}.jpg"), number_image(n))
    cache = ArrayCache(tmp_path / "cache", {"test": "resample"})
    shown = lambda items: np.array([[read_number(item.image)] for item in items], np.int32)  # noqa: E731
    rows, report = cache_face_rows(folder, cache, "006_1", PassThrough(), shown, (1,), np.int32, chunk=4,
                                   source_fps=SAMM_FPS, model_fps=MODEL_FPS)
    rows = np.asarray(rows)[:, 0]
    # about T * 30 / 200 rows: 101 -> 15.15, 100 -> 15, 45 -> 6.75
    assert abs(len(rows) - n_frames * MODEL_FPS / SAMM_FPS) <= 1
    expected = [nearest_source_frame(k, n_frames) for k in range(len(rows))]
    assert rows.tolist() == expected  # the image each row holds
    if n_frames == 101:  # by hand: 0, 6.67, 13.33, 20 ... -> files 1, 8, 14, 21, ..., row 15 at 100 -> 101
        assert expected[:4] == [1, 8, 14, 21] and expected[-1] == 101 and len(rows) == 16
    meta = cache.load_meta("006_1")
    assert expand_ranges(meta["frame_ranges"]) == expected  # the number recorded for each row
    assert meta["fps"] == SAMM_FPS and meta["step_fps"] == MODEL_FPS and meta["frame_count"] == len(rows)
    assert report.frames == len(rows)  # the front end saw the model-rate frames only


# ---------------------------------------------------------------- LOSO on a SAMM-layout replica

WIDTH, HEIGHT = 160, 120
# Per video: frame count at 200 fps, and its expressions as (workbook onset, apex, offset, Type,
# the frames rendered 1-based (onset, apex, offset)). Decimals render at the frames the reader
# rounds them to (onset down, offset up), apex -1 at (onset + offset) // 2, and the onset-0 row
# is an expression already under way when the video starts.
VIDEOS = {
    "006": (960, [(180.4, 300, 419.6, "Macro", (180, 300, 420)),
                  (640, -1, 720, "Micro - 1/2", (640, 680, 720))]),
    "007": (1000, [(300, 420, 560, "Macro", (300, 420, 560)),
                   (750, 790, 830, "Micro - 1/2", (750, 790, 830))]),
    "008": (1030, [(0, 60, 150, "Macro", (1, 60, 150)),
                   (400, 520, 640, "Macro", (400, 520, 640)),
                   (800, 840, 880.5, "Micro - 1/2", (800, 840, 881))]),
}
# The pooled ground truth in SAMM-LV's own 200 fps numbering, worked out by hand from VIDEOS:
# decimals rounded outward, the onset-0 row dropped.
EXPECTED_TRUTH = [("006", "1", 180, 420, "macro"), ("006", "1", 640, 720, "micro"),
                  ("007", "1", 300, 560, "macro"), ("007", "1", 750, 830, "micro"),
                  ("008", "1", 400, 640, "macro"), ("008", "1", 800, 881, "micro")]
EMOTIONS = {"Macro": "positive", "Micro - 1/2": "surprise"}


def write_samm_replica(root: Path) -> None:
    from visionattn.data.synthetic import Event, SynthConfig, action_fields, make_subject, render_base, render_video

    cfg = SynthConfig(fps=SAMM_FPS, width=WIDTH, height=HEIGHT, seconds=5.0)
    photo = np.ascontiguousarray(skdata.astronaut()[:, :, ::-1])
    rows = []
    for s, (subject, (n_frames, expressions)) in enumerate(VIDEOS.items()):
        person = make_subject(s, cfg, np.random.default_rng([7, s]))
        events = []
        for k, (onset, apex, offset, kind, (on1, ap1, off1)) in enumerate(expressions, start=1):
            amplitude = 0.11 if kind == "Macro" else 0.04
            events.append(Event(on1 - 1, ap1 - 1, off1 - 1, "macro" if kind == "Macro" else "micro",
                                EMOTIONS[kind], amplitude))
            rows.append([int(subject), f"{subject}_1_{k}", 1, onset, apex, offset, offset - onset, kind,
                         "6+12" if kind == "Macro" else "1+2", None])
        folder = root / "SAMM_longvideos" / f"{subject}_1"
        folder.mkdir(parents=True)
        frames = render_video(person, render_base(person, cfg, photo), action_fields(person, cfg), n_frames, events,
                              cfg, np.random.default_rng([7, s, 1]))
        for i, frame in enumerate(frames, start=1):
            assert cv2.imwrite(str(folder / f"{subject}_1_{i:04d}.jpg"), frame)
    write_samm(root, rows, name="SAMM_LongVideos_V3_Release.xlsx")


TRAINER = ["--trainer.max_epochs=1", "--trainer.logger=false", "--trainer.enable_progress_bar=false",
           "--trainer.enable_model_summary=false", "--trainer.log_every_n_steps=1"]


def cached_video(cache_root: Path, vid: str):
    """The feature rows and metadata of ``vid`` (one feature cache: one settings folder)."""
    found = sorted(cache_root.glob(f"*/{vid}.npy"))
    assert len(found) == 1, found
    return np.load(found[0], mmap_mode="r"), json.loads(found[0].with_suffix(".json").read_text())


@pytest.mark.slow
def test_loso_on_samm_layout_trains_at_30fps_and_scores_200fps_frames(tmp_path: Path, tiny_overrides) -> None:
    root, cache, out = tmp_path / "samm", tmp_path / "cache", tmp_path / "loso"
    write_samm_replica(root)
    assert main(["loso", "--config", str(REPO / "configs/fedn/base.yaml"),
                 "--config", str(REPO / "configs/fedn/samm.yaml"), "--out", str(out), "--",
                 f"--data.root={root}", f"--data.cache_root={cache}", *TRAINER,
                 *tiny_overrides(window=64)]) == 0
    assert json.loads((out / "report.json").read_text())["spotting"]["overall"].keys() >= {"f1", "precision"}

    frame_numbers = {}
    for subject, (n_frames, _) in VIDEOS.items():
        rows, meta = cached_video(cache, f"{subject}_1")
        numbers = expand_ranges(meta["frame_ranges"])
        # the model rate: about T * 30 / 200 rows, each the 200 fps frame nearest k / 30 s
        assert abs(len(rows) - n_frames * MODEL_FPS / SAMM_FPS) <= 1 and len(numbers) == len(rows)
        assert numbers == [nearest_source_frame(k, n_frames) for k in range(len(rows))]
        assert meta["fps"] == SAMM_FPS and meta["step_fps"] == MODEL_FPS
        assert float(np.asarray(rows[:, 0]).mean()) > 0.9  # the landmark front end tracked the face
        frame_numbers[subject] = numbers

    folds = sorted(p.name for p in out.glob("fold_*"))
    assert folds == ["fold_00_006", "fold_01_007", "fold_02_008"]
    preds = []
    for fold in folds:
        subject = fold.split("_")[2]
        held_out = read_intervals_csv(out / fold / "predictions_test_all_scores.csv")
        assert held_out and {(p.subject, p.video) for p in held_out} == {(subject, "1")}
        preds += held_out
    # Every prediction is in the 200 fps numbering: onset and offset are frames that a row
    # stands for (a prediction at row r reports frame_numbers[r]), inside 1..T, and some lie
    # beyond the last row number, so they are not row indices.
    n_rows_max = max(len(v) for v in frame_numbers.values())
    for p in preds:
        numbers, n_frames = frame_numbers[p.subject], VIDEOS[p.subject][0]
        assert 1 <= p.onset <= p.offset <= n_frames
        assert p.onset in numbers and p.offset in numbers
    assert max(p.offset for p in preds) > n_rows_max
    pooled = read_intervals_csv(out / "predictions_pooled.csv")
    assert all(p in preds for p in pooled)  # the kept ones, above the thresholds chosen on validation

    truth = [(g.subject, g.video, g.onset, g.offset, g.type) for g in read_intervals_csv(out / "ground_truth.csv")]
    assert sorted(truth) == EXPECTED_TRUTH
