"""The video tool's pieces: resampling to the model's frame rate, windows stitched back together."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from visionattn.data.frames import resample
from visionattn.spotting.stitching import WindowStitcher


def _fake_model(events, score=0.9):
    """A 'model' that sees the absolute step in feature column 0 and reports every event
    ``(onset, offset)`` lying fully inside its window, plus a half-seen copy of any event cut by the
    window's end (what a real model does at a border)."""
    calls = []

    def predict(features: torch.Tensor) -> dict:
        steps = features[:, 0].round().long()
        first, last = int(steps[0]), int(steps[-1])
        calls.append((first, last, len(features)))
        rows = []
        for on, off in events:
            if first <= on and off <= last:
                rows.append((on - first, off - first, score))
            elif first <= on <= last < off:  # cut by the window end: a truncated, weaker detection
                rows.append((on - first, last - first, score / 2))
        if not rows:
            return {k: torch.zeros(0, dtype=torch.long) for k in ("onset", "offset", "type", "emotion")} | {
                "score": torch.zeros(0)}
        t = torch.tensor(rows)
        return {"onset": t[:, 0].long(), "offset": t[:, 1].long(), "type": torch.ones(len(rows), dtype=torch.long),
                "emotion": torch.zeros(len(rows), dtype=torch.long), "score": t[:, 2].float()}

    return predict, calls


def _stream(stitcher: WindowStitcher, n: int, chunk: int) -> list:
    for s in range(0, n, chunk):
        steps = np.arange(s, min(n, s + chunk), dtype=np.float32)
        stitcher.push(np.stack([steps, np.zeros_like(steps)], 1))
        assert stitcher._buffered < stitcher.window  # constant memory: never more than a window
    return stitcher.finish()


@pytest.mark.parametrize("chunk", [1, 37, 500])
def test_each_expression_once_and_whole_across_window_borders(chunk: int) -> None:
    # window 100, overlap 40: windows start at 0, 60, 120, ...; the event at 90..110 straddles
    # the first window's end, 55..65 sits in the overlap, 230..236 near the stream's end.
    events = [(5, 20), (55, 65), (90, 110), (150, 185), (230, 236)]
    predict, calls = _fake_model(events)
    got = _stream(WindowStitcher(predict, window=100, overlap=40), 240, chunk)
    assert sorted((d.onset, d.offset) for d in got) == events
    assert all(d.score == pytest.approx(0.9) for d in got)  # whole detections, not truncated halves
    assert [c[0] for c in calls] == [0, 60, 120, 180] and calls[-1][1] == 239


def test_threshold_and_cross_window_duplicates() -> None:

    def predict(features: torch.Tensor) -> dict:
        first = int(features[0, 0])
        # both windows report the same expression, shifted by a frame, centres on both sides of
        # the core border (80): the merge keeps the better one only
        on = 50 - first if first == 0 else 52 - first
        return {"onset": torch.tensor([on, on]), "offset": torch.tensor([on + 20, on + 2]),
                "type": torch.tensor([1, 0]), "emotion": torch.tensor([2, 2]),
                "score": torch.tensor([0.8 if first == 0 else 0.7, 0.1])}

    st = WindowStitcher(predict, window=100, overlap=60, thresholds=0.2)
    got = _stream(st, 160, 160)
    assert [(d.onset, d.offset, d.score) for d in got] == [(50, 70, pytest.approx(0.8))]


def test_short_video_is_one_window() -> None:
    predict, calls = _fake_model([(3, 8)])
    got = _stream(WindowStitcher(predict, window=1000, overlap=100), 30, 7)
    assert [(d.onset, d.offset) for d in got] == [(3, 8)] and calls == [(0, 29, 30)]


def _times(fps: float, n: int, jitter: float = 0.0, seed: int = 0):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / fps + rng.uniform(-jitter, jitter, n) / fps
    t[0] = 0.0
    return [(i, float(s), np.full((1,), i)) for i, s in enumerate(np.maximum.accumulate(t))]


@pytest.mark.parametrize("source_fps", [30.0, 29.97, 25.0, 60.0, 15.0])
def test_resample_picks_the_nearest_frame_at_the_model_rate(source_fps: float) -> None:
    frames = _times(source_fps, int(source_fps * 4))  # 4 seconds
    out = list(resample(iter(frames), 30.0))
    steps = [s for s, *_ in out]
    assert steps == list(range(len(out)))
    assert abs(len(out) - 120) <= 1  # 4 s at 30 fps, whatever the source rate
    times = np.array([t for _, t, _ in frames])
    for step, index, seconds, image in out:
        nearest = int(np.argmin(np.abs(times - step / 30.0)))
        assert abs(times[index] - step / 30.0) <= abs(times[nearest] - step / 30.0) + 1e-9
        assert int(image[0]) == index and seconds == times[index]


def test_resample_variable_rate_keeps_time() -> None:
    # a variable-rate clip: 1 s at 10 fps then 1 s at 50 fps
    t = list(np.arange(10) / 10) + list(1 + np.arange(50) / 50)
    frames = [(i, float(s), np.zeros(1)) for i, s in enumerate(t)]
    out = list(resample(iter(frames), 30.0))
    assert abs(len(out) - 60) <= 1
    first_second = [index for step, index, _, _ in out if step < 30]
    assert set(first_second) <= set(range(11)) and len(first_second) == 30  # slow part: repeats
    assert len({index for step, index, _, _ in out if step >= 31}) == 29  # fast part: every other frame


# ---------------------------------------------------------------- the command, end to end
import json  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import yaml  # noqa: E402

from visionattn.cli import main  # noqa: E402
from visionattn.data.frames import iter_frames  # noqa: E402
from visionattn.evaluation import read_intervals_csv  # noqa: E402
from media import write_video  # noqa: E402

@pytest.fixture(scope="module")
def trained(tmp_path_factory, synth_dataset, tiny_recipe):
    """A FEDN trained for one epoch on a tiny synthetic mp4 dataset, and its test predictions."""
    root = tmp_path_factory.mktemp("detect")
    dataset = synth_dataset(subjects=3, seconds=12, seed=3, video=True)
    # the default features (landmark front end, motion and appearance streams); every detection kept
    cfg = tiny_recipe(dataset, root, trainer={"max_epochs": 1, "logger": False, "enable_progress_bar": False},
                      fedn={"pre_nms_threshold": 0.0, "score_floor": 0.0}, data={"test_subjects": ["s19"]})
    config = root / "tiny.yaml"
    config.write_text(yaml.safe_dump(cfg))
    assert main(["train", "fit", "--config", str(config)]) == 0
    ckpt = next((root / "run").rglob("*.ckpt"))
    assert main(["train", "test", "--config", str(config), f"--ckpt_path={ckpt}",
                 f"--model.predictions_dir={root / 'pred'}"]) == 0
    video = next((dataset / "rawpic" / "s19").glob("*.mp4"))
    return root, ckpt, video


@pytest.mark.slow  # the trained fixture: synth + one training epoch, about 100 s
def test_detect_matches_training_predictions_and_writes_every_output(trained, capsys) -> None:
    root, ckpt, video = trained
    out = root / "out"
    # one window over the whole video: the streamed features must equal the training cache's,
    # so the detections must equal what `train test` predicted for this held-out video
    assert main(["detect", str(video), "--checkpoint", str(ckpt), "--out", str(out), "--window", "4096",
                 "--threshold", "0.0", "--no-progress"]) == 0
    result = json.loads((out / f"{video.stem}.json").read_text())
    assert result["fps"] == pytest.approx(30.0) and result["frame_count"] == 360 and result["face_found"]
    expected = sorted((p.onset, p.offset, p.type, p.score)  # both count a video file's frames from 1
                      for p in read_intervals_csv(root / "pred" / "predictions_test_all_scores.csv"))
    got = sorted((i["onset"], i["offset"], i["type"], i["score"]) for i in result["intervals"])
    assert got and [g[:3] for g in got] == [e[:3] for e in expected]
    assert [g[3] for g in got] == pytest.approx([e[3] for e in expected], abs=1e-3)  # scores are rounded
    for i in result["intervals"]:
        assert i["onset_s"] == pytest.approx((i["onset"] - 1) / 30.0, abs=1e-3)
        assert i["offset_s"] == pytest.approx((i["offset"] - 1) / 30.0, abs=1e-3)
    assert result["frame_numbering"] == "1-based frame numbers of the video file"
    rows = read_intervals_csv(out / f"{video.stem}.csv")
    assert len(rows) == len(result["intervals"]) and rows[0].video == video.stem
    assert cv2.imread(str(out / f"{video.stem}_timeline.png")) is not None
    n = len(result["intervals"])
    assert f": {n} {'expression' if n == 1 else 'expressions'} (" in capsys.readouterr().out


@pytest.mark.slow  # the trained fixture: synth + one training epoch, about 100 s
def test_detect_windows_agree_with_one_pass(trained) -> None:
    root, ckpt, video = trained
    assert main(["detect", str(video), "--checkpoint", str(ckpt), "--out", str(root / "win"), "--window", "128",
                 "--overlap", "48", "--no-progress"]) == 0
    assert main(["detect", str(video), "--checkpoint", str(ckpt), "--out", str(root / "one"), "--window", "4096",
                 "--no-progress"]) == 0
    win = json.loads((root / "win" / f"{video.stem}.json").read_text())["intervals"]
    one = json.loads((root / "one" / f"{video.stem}.json").read_text())["intervals"]
    assert all(0 <= i["onset"] <= i["offset"] < 360 for i in win)
    # windows see less context, so scores move a little; the strong detections stay
    strong = [(i["onset"], i["offset"]) for i in one if i["score"] > 0.5]
    found = [(i["onset"], i["offset"]) for i in win]
    assert all(any(abs(a - c) <= 3 and abs(b - d) <= 3 for c, d in found) for a, b in strong)


@pytest.mark.slow  # the trained fixture: synth + one training epoch, about 100 s
def test_bad_videos_are_named_and_the_rest_still_run(trained, tmp_path, capsys) -> None:
    root, ckpt, video = trained
    not_video = tmp_path / "notes.mp4"
    not_video.write_text("this is not a video")
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(video.read_bytes()[:2000])
    missing = tmp_path / "missing.mp4"
    rng = np.random.default_rng(0)
    no_face = write_video(tmp_path / "noface.mp4",
                           [cv2.GaussianBlur(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8), (9, 9), 3)
                            for _ in range(45)], fps=25.0)
    code = main(["detect", str(not_video), str(corrupt), str(missing), str(no_face), str(video),
                 "--checkpoint", str(ckpt), "--out", str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr()
    assert code != 0
    for bad in (not_video, corrupt, missing):
        assert str(bad) in err.err
        assert not (tmp_path / "out" / f"{bad.stem}.json").exists()
    assert "Traceback" not in err.err
    empty = json.loads((tmp_path / "out" / "noface.json").read_text())
    assert empty["face_found"] is False and empty["intervals"] == [] and empty["frame_count"] == 45
    assert "no face" in err.out
    assert (tmp_path / "out" / "noface_timeline.png").is_file()
    assert (tmp_path / "out" / f"{video.stem}.json").is_file()  # the good video after the bad ones


@pytest.mark.slow  # the trained fixture: synth + one training epoch, about 100 s
def test_odd_frame_rate_is_resampled_to_the_model_rate(trained, tmp_path) -> None:
    root, ckpt, video = trained
    frames = [f for _, (_, f) in zip(range(150), iter_frames(video))]
    fast = write_video(tmp_path / "fast.mp4", [f for f in frames for _ in (0, 1)], fps=60.0)  # same 5 s at 60 fps
    assert main(["detect", str(fast), "--checkpoint", str(ckpt), "--out", str(tmp_path), "--threshold", "0.0",
                 "--window", "4096", "--no-progress", "--annotate"]) == 0
    result = json.loads((tmp_path / "fast.json").read_text())
    assert result["fps"] == pytest.approx(60.0) and result["frame_count"] == 300 and result["model_fps"] == 30.0
    for i in result["intervals"]:  # frames are the 60-fps video's own; seconds agree with them
        assert i["onset_s"] == pytest.approx(i["onset"] / 60.0, abs=0.02)
    cap = cv2.VideoCapture(str(tmp_path / "fast_annotated.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 300
    cap.release()


@pytest.mark.slow  # the trained fixture: synth + one training epoch, about 100 s
def test_second_run_skips_finished_videos(trained, capsys) -> None:
    root, ckpt, video = trained
    args = ["detect", str(video), "--checkpoint", str(ckpt), "--out", str(root / "again"), "--no-progress"]
    assert main(args) == 0
    assert main(args) == 0
    assert "skipped" in capsys.readouterr().out


def test_bad_checkpoint_is_named(tmp_path, capsys) -> None:
    bogus = tmp_path / "model.ckpt"
    bogus.write_bytes(b"\x00not a checkpoint")
    assert main(["detect", "x.mp4", "--checkpoint", str(bogus), "--out", str(tmp_path)]) == 2
    assert str(bogus) in capsys.readouterr().err


def test_checkpoint_from_before_the_record_is_refused_in_one_line(tmp_path, capsys) -> None:
    # The layout `visionattn train` wrote before detector records existed: Lightning's keys, the
    # weights under "model.", a "threshold" buffer and the data's hyper-parameters.
    old = tmp_path / "old.ckpt"
    torch.save({"state_dict": {"model.embed.conv.weight": torch.zeros(1), "threshold": torch.tensor([0.3, 0.3])},
                "hyper_parameters": {"fedn": {"feature_dim": 512}},
                "datamodule_hyper_parameters": {"features": {"backbone": "resnet18"}, "window": 1024, "fps": 30.0},
                "epoch": 3, "global_step": 12, "pytorch-lightning_version": "2.6.0"}, old)
    assert main(["detect", "x.mp4", "--checkpoint", str(old), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(old) in err and "no detector record" in err and "retrain" in err.lower()
    assert not (tmp_path / "out").exists()


@pytest.mark.slow  # the trained fixture: synth + one training epoch, about 100 s
def test_record_of_an_unknown_version_is_refused(trained, tmp_path, capsys) -> None:
    from visionattn.inference.record import RECORD_KEY

    _, ckpt, _ = trained
    data = torch.load(ckpt, map_location="cpu", weights_only=False)
    data[RECORD_KEY]["version"] = 99
    future = tmp_path / "future.ckpt"
    torch.save(data, future)
    assert main(["detect", "x.mp4", "--checkpoint", str(future), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "version 99" in err


@pytest.mark.slow  # the trained fixture: synth + one training epoch, about 100 s
def test_record_round_trips_the_trained_model(trained, tmp_path) -> None:
    """The record alone (a small standalone file) rebuilds the network the checkpoint trained,
    with the thresholds chosen on validation and the feature settings the data was made with."""
    from visionattn.inference.record import read_record

    root, ckpt, _ = trained
    lightning_ckpt = torch.load(ckpt, map_location="cpu", weights_only=False)
    record = read_record(ckpt)
    standalone = read_record(record.save(tmp_path / "detector.pt"))
    assert torch.load(tmp_path / "detector.pt", weights_only=True)  # plain data, no pickled classes
    weights = {k[len("model."):]: v for k, v in lightning_ckpt["state_dict"].items() if k.startswith("model.")}
    for rec in (record, standalone):
        model = rec.build_model()
        assert set(model.state_dict()) == set(weights)
        assert all(torch.equal(model.state_dict()[k], weights[k]) for k in weights)
        assert [rec.thresholds[t] for t in rec.type_names] == lightning_ckpt["state_dict"]["thresholds"].tolist()
        assert rec.window == 128 and rec.fps == 30.0 and rec.model.feature_dim == 2 + 27 + 7 + 128
        assert rec.features.face_size == 64 and rec.features.streams == ("motion", "appearance")
        x = torch.randn(1, 100, rec.model.feature_dim)
        torch.manual_seed(0)
        assert torch.equal(model.temporal(x)["type_logits"][0], record.build_model().temporal(x)["type_logits"][0])


OPENCV_DOC = Path("/usr/share/doc/opencv-doc/examples/data")


@pytest.mark.slow  # the trained fixture: synth + one training epoch, about 100 s
@pytest.mark.parametrize("name, has_face", [("Megamind.avi", True), ("vtest.avi", None)])
def test_real_videos_from_opencv_doc(trained, tmp_path, name: str, has_face) -> None:
    video = OPENCV_DOC / name
    if not video.is_file():
        pytest.skip(f"{video} not found: install Debian's opencv-doc package (apt install opencv-doc) "
                    "to run the video tool on real videos none of us made")
    root, ckpt, _ = trained
    assert main(["detect", str(video), "--checkpoint", str(ckpt), "--out", str(tmp_path), "--no-progress"]) == 0
    result = json.loads((tmp_path / f"{video.stem}.json").read_text())
    cap = cv2.VideoCapture(str(video))
    assert result["frame_count"] == int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.release()
    if has_face is not None:
        assert result["face_found"] is has_face
    assert all(0 <= i["onset"] <= i["offset"] < result["frame_count"] for i in result["intervals"])
    assert cv2.imread(str(tmp_path / f"{video.stem}_timeline.png")) is not None
