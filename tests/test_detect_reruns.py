"""``visionattn detect`` as a practitioner's tool: truthful reruns from cached signals, per-type
thresholds, flags a method does not use, the per-frame CSV, the JSON's schema, file modes,
the face choice and a clean console. Every JSON written here is also validated against the
schema by conftest.py."""
from __future__ import annotations

import csv
import json
import os
import stat
import warnings
from pathlib import Path

import numpy as np
import pytest

from visionattn.cli import main
from visionattn.inference import detector as detector_module
from visionattn.utils.io import atomic_write_text

from conftest import validate_detect_json
from media import carphone_or_skip

FER = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
# the documented FER -> MEGC grouping (docs/detect.md, visionattn/features/emotions.py's docstring)
MEGC = {"negative": ("angry", "disgust", "fear", "sad"), "positive": ("happy",), "surprise": ("surprise",),
        "others": ("neutral",)}


@pytest.fixture(scope="module")
def scans():
    """Counts the expensive passes (:func:`visionattn.inference.detector.scan_video`: tracking,
    features, the temporal model) made while the module's tests run."""
    calls = []
    made = detector_module.scan_video

    def counted(*args, **kwargs):
        calls.append(args[0])
        return made(*args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(detector_module, "scan_video", counted)
        yield calls


@pytest.fixture(scope="module")
def first(scans, tmp_path_factory):
    """The bundled model on carphone into a fresh folder: ``(out, video, console line)``."""
    video = carphone_or_skip()
    out = tmp_path_factory.mktemp("reruns")
    return out, video, _detect(video, out)


def _detect(video: Path, out: Path, *flags: str) -> str:
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        method = () if "--method" in flags else ("--method", "fedn")  # the bundled model unless told
        assert main(["detect", str(video), "--out", str(out), "--no-progress", *method, *flags]) == 0
    return buffer.getvalue().strip()


def test_rerun_with_the_same_settings_is_skipped(first, scans) -> None:
    out, video, _ = first
    before = len(scans)
    assert "up to date, skipped" in _detect(video, out)
    assert len(scans) == before


def test_new_thresholds_rescore_the_cached_signals_without_tracking(first, scans, tmp_path) -> None:
    out, video, _ = first
    before = len(scans)
    line = _detect(video, out, "--thresholds", "micro=0.05,macro=0.1")
    assert len(scans) == before, "re-thresholding tracked the video again"
    assert "re-scored from the cached signals" in line and "thresholds micro=0.15,macro=0.3 -> micro=0.05,macro=0.1" \
        in line
    cached = json.loads((out / f"{video.stem}.json").read_text())
    assert cached["thresholds"] == {"micro": 0.05, "macro": 0.1}
    # the truth: a fresh run at those thresholds finds the same intervals
    _detect(video, tmp_path, "--thresholds", "micro=0.05,macro=0.1")
    fresh = json.loads((tmp_path / f"{video.stem}.json").read_text())
    assert len(scans) == before + 1
    assert cached["intervals"] == fresh["intervals"] and len(fresh["intervals"]) >= 1
    assert (out / f"{video.stem}.csv").read_text() == (tmp_path / f"{video.stem}.csv").read_text()
    # one value for both types
    _detect(video, out, "--thresholds", "0.2")
    assert json.loads((out / f"{video.stem}.json").read_text())["thresholds"] == {"micro": 0.2, "macro": 0.2}
    assert len(scans) == before + 1


def test_another_method_recomputes_and_says_so(first, scans) -> None:
    out, video, _ = first
    before = len(scans)
    line = _detect(video, out, "--method", "flow")
    assert "computed: method fedn -> flow" in line and len(scans) == before + 1
    result = json.loads((out / f"{video.stem}.json").read_text())
    assert result["method"] == "flow" and result["thresholds"] == {"micro": 5.0, "macro": 5.0}
    line = _detect(video, out, "--method", "flow", "--thresholds", "3")
    assert "re-scored from the cached signals: thresholds micro=5,macro=5 -> micro=3,macro=3" in line
    assert len(scans) == before + 1
    signals = np.load(out / f"{video.stem}_signals.npz")
    assert list(signals["threshold_values"]) == [3.0] and str(signals["score_label"]).startswith("motion energy")
    assert signals["score"].shape == signals["times_s"].shape
    # the appearance spotter reads the same scan as the flow one: nothing is tracked again, and the
    # result is the one a fresh appearance run gives
    line = _detect(video, out, "--method", "appearance")
    assert "re-scored from the cached signals: method flow -> appearance" in line
    assert len(scans) == before + 1
    cached = json.loads((out / f"{video.stem}.json").read_text())
    assert cached["method"] == "appearance"
    fresh = out.parent / f"{out.name}_fresh"
    _detect(video, fresh, "--method", "appearance")
    assert len(scans) == before + 2
    assert json.loads((fresh / f"{video.stem}.json").read_text())["intervals"] == cached["intervals"]


def test_a_changed_video_is_recomputed(scans, tmp_path) -> None:
    video = tmp_path / "clip.mp4"
    video.write_bytes(carphone_or_skip().read_bytes())
    out = tmp_path / "out"
    _detect(video, out, "--method", "flow")
    os.utime(video, ns=(video.stat().st_atime_ns, video.stat().st_mtime_ns + 10**9))
    before = len(scans)
    assert "computed: the video changed" in _detect(video, out, "--method", "flow")
    assert len(scans) == before + 1


def test_fedn_timeline_signals_are_what_was_thresholded(first) -> None:
    """The score panel's curves are each type's best candidate score per step, and the lines
    the result's thresholds; a step inside a reported interval reaches its type's threshold."""
    out, video, _ = first
    _detect(video, out, "--thresholds", "micro=0.05,macro=0.1")
    result = json.loads((out / f"{video.stem}.json").read_text())
    signals = np.load(out / f"{video.stem}_signals.npz")
    assert list(signals["score_names"]) == ["micro", "macro"] and signals["score"].shape == (len(signals["times_s"]), 2)
    assert dict(zip(signals["threshold_names"], signals["threshold_values"])) == result["thresholds"]
    step_of = {int(f): i for i, f in enumerate(signals["frames"])}
    for interval in result["intervals"]:
        column = ["micro", "macro"].index(interval["type"])
        steps = [step_of[f] for f in range(interval["onset"], interval["offset"] + 1) if f in step_of]
        assert signals["score"][steps, column].max() >= result["thresholds"][interval["type"]] - 1e-4


def test_per_frame_csv(first) -> None:
    out, video, _ = first
    with open(out / f"{video.stem}_frames.csv", newline="") as f:
        rows = list(csv.reader(f))
    header, rows = rows[0], rows[1:]
    expected = (["frame", "time_s", "face", "x", "y", "w", "h", "motion_energy"] + _score_columns(header)
                + [f"fer_{c}" for c in FER] + [f"megc_{c}" for c in MEGC])
    assert header == expected
    result = json.loads((out / f"{video.stem}.json").read_text())
    table = [dict(zip(header, r)) for r in rows]
    assert abs(len(table) - result["frame_count"]) <= 1  # 29.97 fps resampled to 30
    no_face = {f for a, b in result["frames_without_face"] for f in range(a, b + 1)}
    for row in table:
        frame = int(row["frame"])
        assert row["face"] == ("0" if frame in no_face else "1")
        if row["face"] == "1":
            fer = {c: float(row[f"fer_{c}"]) for c in FER}
            assert sum(fer.values()) == pytest.approx(1, abs=1e-4)
            for megc, group in MEGC.items():
                assert float(row[f"megc_{megc}"]) == pytest.approx(sum(fer[c] for c in group), abs=2e-5)
            x, y, w, h = (float(row[k]) for k in "xywh")
            assert 0 <= x < 176 and 0 <= y < 144 and w > 0 and h > 0
    times = [float(r["time_s"]) for r in table]
    assert times == sorted(times)
    assert any(r["motion_energy"] for r in table)


def _score_columns(header) -> list:
    return ["score_micro", "score_macro"] if "score_micro" in header else ["score"]


def test_json_carries_its_versions_and_validates(first) -> None:
    import visionattn

    out, video, _ = first
    data = validate_detect_json(out / f"{video.stem}.json")
    assert data["schema_version"] == 1 and data["visionattn_version"] == visionattn.__version__
    assert data["inputs"]["video"]["bytes"] == video.stat().st_size


def test_schema_rejects_a_result_missing_a_field(first, tmp_path) -> None:
    import jsonschema

    out, video, _ = first
    data = json.loads((out / f"{video.stem}.json").read_text())
    del data["thresholds"]
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(jsonschema.ValidationError):
        validate_detect_json(tmp_path / "bad.json")


def test_outputs_respect_the_umask(tmp_path) -> None:
    old = os.umask(0o027)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o640
        os.umask(0o022)
        atomic_write_text(tmp_path / "b.txt", "x")
        assert stat.S_IMODE((tmp_path / "b.txt").stat().st_mode) == 0o644
    finally:
        os.umask(old)


def test_detect_outputs_are_readable_by_others(first) -> None:
    out, video, _ = first
    mask = os.umask(0o022)
    os.umask(mask)
    if mask & 0o044:
        pytest.skip("this process's umask hides files from others")
    for path in out.glob(f"{video.stem}*"):
        assert stat.S_IMODE(path.stat().st_mode) & 0o044 == 0o044, path


@pytest.mark.parametrize("flags", [["--window", "64"], ["--overlap", "8"], ["--encoder-checkpoint", "x.pt"],
                                   ["--checkpoint", "x.ckpt"]])
def test_flags_the_method_does_not_use_are_refused(tmp_path, capsys, flags) -> None:
    assert main(["detect", "x.mp4", "--out", str(tmp_path), "--method", "flow", *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and flags[0] in err and "--method flow does not use it" in err


def test_flow_takes_one_threshold(tmp_path, capsys) -> None:
    assert main(["detect", "x.mp4", "--out", str(tmp_path), "--method", "flow", "--thresholds",
                 "micro=3,macro=4"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "one threshold" in err


def test_unknown_type_and_bad_threshold_are_named(tmp_path, capsys) -> None:
    assert main(["detect", "x.mp4", "--out", str(tmp_path), "--thresholds", "mikro=0.2"]) == 2
    assert "'mikro'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["detect", "x.mp4", "--out", str(tmp_path), "--thresholds", "micro=high"])
    assert "micro=0.2,macro=0.3" in capsys.readouterr().err


def test_old_names_still_read() -> None:
    """Records, results and checkpoints written under the old names load under the new ones."""
    import torch

    from visionattn.inference.bundled import BUNDLED_MODEL
    from visionattn.inference.record import RECORD_KEY, DetectorRecord
    from visionattn.inference.result import VideoResult
    from visionattn.training.module import SpottingModule

    data = torch.load(BUNDLED_MODEL, map_location="cpu", weights_only=True)[RECORD_KEY]
    data["model"]["min_score"] = data["model"].pop("score_floor", 0.001) + 0.25
    assert DetectorRecord.from_dict(data, "old").model.score_floor == pytest.approx(0.251)
    old = VideoResult.from_dict({"video": "v.mp4", "fps": 30.0, "frame_count": 1, "duration_s": 0.03, "width": 4,
                                 "height": 4, "face_found": False, "threshold": {"micro": 0.1, "macro": 0.2}})
    assert old.thresholds == {"micro": 0.1, "macro": 0.2} and old.schema_version == 0
    # a config pickled into an old Lightning checkpoint's hyper-parameters
    import pickle

    from visionattn.models.fedn import FEDNConfig

    config = FEDNConfig()
    config.__dict__["min_score"] = config.__dict__.pop("score_floor") + 0.5
    assert pickle.loads(pickle.dumps(config)).score_floor == pytest.approx(0.501)
    checkpoint = {"state_dict": {"threshold": torch.tensor([0.1, 0.2])}}
    SpottingModule.on_load_checkpoint(None, checkpoint)
    assert list(checkpoint["state_dict"]) == ["thresholds"]


def test_face_choice() -> None:
    from visionattn.faces.tracking import FaceTracker

    tracker = FaceTracker(face="largest")
    boxes = [(150.0, 0.0, 30.0, 30.0), (0.0, 0.0, 50.0, 50.0), (95.0, 50.0, 20.0, 20.0)]
    shape = (120, 200)  # centre (100, 60)
    assert tracker._chosen(boxes, shape) == boxes[1]
    for face, want in (("center", boxes[2]), ("1", boxes[1]), ("2", boxes[2]), ("3", boxes[0]), ("9", boxes[0])):
        assert FaceTracker(face=face)._chosen(boxes, shape) == want, face
    with pytest.raises(ValueError):
        FaceTracker(face="left")
    # the default leaves the tracker's settings (feature cache keys) as they were
    assert "face" not in tracker.settings() and FaceTracker(face="center").settings()["face"] == "center"


def test_several_faces_are_named(tmp_path, capsys) -> None:
    """Two carphone clips side by side: the warning names two faces, and ``--face 2`` follows
    the right-hand one."""
    import cv2

    from visionattn.data.frames import iter_frames
    from media import write_video

    frames = [np.concatenate([f, f], axis=1) for _, f in iter_frames(carphone_or_skip())][:60]
    video = write_video(tmp_path / "two.mp4", frames)
    for face, side in (("largest", None), ("2", 1)):
        out = tmp_path / face
        assert main(["detect", str(video), "--out", str(out), "--method", "flow", "--no-progress",
                     "--face", face]) == 0
        err = capsys.readouterr().err
        assert "2 faces in view" in err and len(err.strip().splitlines()) == 1
        if side is not None:
            xs = [float(r["x"]) for r in csv.DictReader(open(out / "two_frames.csv")) if r["x"]]
            assert xs and min(xs) >= 176 - 10
    assert cv2 is not None


def test_console_has_no_bars_off_a_terminal_and_warnings_in_one_line(first, capsys) -> None:
    from visionattn.utils.console import progress_wanted, quiet_library_chatter

    out, video, _ = first
    assert not progress_wanted(True)  # pytest's captured stderr is no terminal
    assert main(["detect", str(video), "--out", str(out), "--method", "flow", "--force"]) == 0
    captured = capsys.readouterr()
    # one line for the video, one for the batch (where its pooled CSV is)
    video_line, batch_line = captured.out.strip().splitlines()
    assert "\r" not in captured.err and video_line.startswith(str(video)) and "detections.csv" in batch_line
    quiet_library_chatter()
    line = warnings.formatwarning("v.mp4: video ended after 95 of 98 frames (truncated?)", RuntimeWarning,
                                  "frames.py", 265, "for position, frame in _iter_video(...)")
    assert line == "warning: v.mp4: video ended after 95 of 98 frames (truncated?)\n"
