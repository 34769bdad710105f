"""``visionattn detect`` on batches (issue 25): folders of videos, globs, lists; unique output
names; the pooled ``detections.csv`` that ``visionattn evaluate`` scores in one call; the split
over torchrun processes; ``--fps`` for frame folders and ``--start/--end``.

Most tests replace the detector by :class:`StandIn`, which reads the frames it is given (so
``--fps`` and ``--start/--end`` reach it as they reach the real one) and reports one expression
per video at a place fixed below, so the ground truth is written by hand; the real detector
runs in the tests marked "real" at the end.
"""
from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from visionattn.cli import main
from visionattn.data.frames import VideoPart, iter_timed_frames, probe, resample
from visionattn.inference import command as command_mod
from visionattn.inference.detector import Decision, VideoScan
from visionattn.inference.inputs import expand_videos, output_names
from visionattn.inference.signals import TimelineSignals
from visionattn.utils import UserError

from media import carphone_or_skip, write_video

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
FPS = 25.0
FRAMES = 30
# StandIn's one expression: frames 3..6 of each video (1-based), micro, the emotion below
ONSET, OFFSET = 3, 6


# ---------------------------------------------------------------- stand-in detector
class StandIn:
    """Reads the frames (honouring the part) and reports one micro expression on the 3rd to
    6th frame read; logs every video it is given to ``$STANDIN_LOG`` (one line: rank, path).
    It speaks the detectors' protocol: :meth:`scan` (the pass over the video, cached by
    ``visionattn detect``) and :meth:`decide`."""

    method, model_fps, face = "fedn", 30.0, "largest"
    thresholds = {"micro": 0.5, "macro": 0.5}

    def signals_key(self) -> dict:
        return {"method": self.method, "features": "stand-in", "fps": self.model_fps, "face": self.face}

    def settings_key(self) -> dict:
        return {**self.signals_key(), "thresholds": self.thresholds}

    def scan(self, source, progress=True, part=VideoPart()):
        fps = part.fps or self.model_fps
        frames = [(i, t) for i, t, _ in iter_timed_frames(source, fps=fps, start_s=part.start_s, end_s=part.end_s)]
        path = Path(source)
        if os.environ.get("STANDIN_FAIL") and path.stem == os.environ["STANDIN_FAIL"]:
            raise UserError(f"{source}: not a video or corrupt (planted)")
        with open(os.environ.get("STANDIN_LOG", os.devnull), "a") as log:
            log.write(f"{os.environ.get('RANK', '0')} {path}\n")
        n = len(frames)
        return VideoScan(probe(source, fps=fps), self.model_fps, part=part, decoded=n, first_index=frames[0][0],
                         steps_source=[i for i, _ in frames], steps_time=[t for _, t in frames], boxes=[None] * n,
                         present=[True] * n, face_found=True)

    def decide(self, scan):
        result = scan.result([(ONSET - 1, OFFSET - 1, "micro", "surprise", 0.8)], self.thresholds,
                             method=self.method, score_name="stand-in score")
        signals = TimelineSignals(times_s=np.asarray(scan.steps_time))
        return Decision(result, scan.source_boxes(), signals, scan)


def use_stand_in(monkeypatch=None) -> None:
    """Make ``visionattn detect`` build :class:`StandIn` (also called in subprocesses)."""
    fake = lambda *args, **kwargs: StandIn()  # noqa: E731
    if monkeypatch is None:
        command_mod._detector = fake
    else:
        monkeypatch.setattr(command_mod, "_detector", fake)


@pytest.fixture
def stand_in(monkeypatch):
    use_stand_in(monkeypatch)


def _clip(path: Path, shade: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(shade)
    return write_video(path, [rng.integers(0, 255, (48, 64, 3), dtype=np.uint8) for _ in range(FRAMES)], FPS)


def _frame_folder(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(1, count + 1):  # SAMM-style names: the last number is the frame number
        cv2.imwrite(str(folder / f"006_{n:05d}.jpg"), np.full((48, 64, 3), n % 255, np.uint8))
    return folder


def _rows(path: Path) -> list:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _detect(*args) -> int:
    return main(["detect", *map(str, args), "--no-progress"])


# ---------------------------------------------------------------- input expansion
def test_a_folder_tells_frame_folders_from_folders_of_videos(tmp_path):
    _clip(tmp_path / "data" / "s1" / "a.mp4")
    _clip(tmp_path / "data" / "s2" / "b.avi")
    _frame_folder(tmp_path / "data" / "s3" / "take1", 3)
    (tmp_path / "data" / "notes.txt").write_text("not a video")
    clips = expand_videos([str(tmp_path / "data")])
    assert sorted((c.name, c.kind) for c in clips) == [("a", "video"), ("b", "video"), ("take1", "frames")]
    # a folder with images in it is one clip, whatever else it holds
    _clip(tmp_path / "data" / "s3" / "take1" / "stray.mp4")
    assert [(c.name, c.kind) for c in expand_videos([str(tmp_path / "data" / "s3" / "take1")])] == [("take1", "frames")]


def test_globs_lists_and_the_output_folder(tmp_path):
    for name in ("a", "b", "c"):
        _clip(tmp_path / "clips" / f"{name}.mp4")
    listing = tmp_path / "lists" / "batch.txt"
    listing.parent.mkdir()
    listing.write_text("# two of them\n../clips/a.mp4\n\n" + str(tmp_path / "clips" / "c.mp4") + "\n")
    assert [c.name for c in expand_videos([str(listing)])] == ["a", "c"]
    assert [c.name for c in expand_videos([str(tmp_path / "clips" / "[ab].mp4")])] == ["a", "b"]
    # the same video named twice is one clip
    assert len(expand_videos([str(listing), str(tmp_path / "clips" / "a.mp4")])) == 2
    # outputs written inside the input folder are never read back as inputs
    _clip(tmp_path / "clips" / "out" / "a_annotated.mp4")
    names = [c.name for c in expand_videos([str(tmp_path / "clips")], exclude=tmp_path / "clips" / "out")]
    assert names == ["a", "b", "c"]


@pytest.mark.parametrize("argument, message", [
    ("nothing/*.mp4", "no file or folder matches"),
    ("empty", "folder has no videos"),
    ("bad.txt", "bad.txt, line 2: "),
])
def test_arguments_naming_nothing_say_so(tmp_path, monkeypatch, argument, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    _clip(tmp_path / "ok.mp4")
    (tmp_path / "bad.txt").write_text("ok.mp4\nnothing/*.avi\n")
    with pytest.raises(UserError, match=message):
        expand_videos([argument])


def test_output_names_unique_and_independent_of_order(tmp_path):
    paths = [tmp_path / "x" / "s15" / "anger.mp4", tmp_path / "y" / "s15" / "anger.mp4",
             tmp_path / "s16" / "anger.mp4", tmp_path / "s16" / "joy.mp4", tmp_path / "s16" / "joy.avi",
             tmp_path / "z" / "detections.mp4"]
    names = output_names(paths)
    expected = {"x__s15__anger", "y__s15__anger", "s16__anger", "joy_mp4", "joy_avi", "z__detections"}
    assert set(names.values()) == expected
    assert output_names(paths[::-1]) == names
    assert output_names(paths[3:4]) == {paths[3].resolve(): "joy"}  # alone, a video keeps its own name


# ---------------------------------------------------------------- batches
def test_folder_of_three_videos_pooled_csv_scored_by_evaluate(tmp_path, stand_in, capsys):
    for k, name in enumerate(("a", "b", "c")):
        _clip(tmp_path / "clips" / "s1" / f"{name}.mp4", shade=k)
    out = tmp_path / "out"
    assert _detect(tmp_path / "clips", "--out", out) == 0
    assert sorted(p.name for p in out.glob("*.json")) == ["a.json", "b.json", "c.json"]
    for name in "abc":
        result = json.loads((out / f"{name}.json").read_text())
        assert Path(result["video"]).name == f"{name}.mp4"
    pooled = _rows(out / "detections.csv")
    per_video = [row for name in "abc" for row in _rows(out / f"{name}.csv")]
    assert sorted(map(tuple, (r.values() for r in pooled))) == sorted(map(tuple, (r.values() for r in per_video)))
    assert sorted((r["subject"], r["video"], r["onset"], r["offset"]) for r in pooled) == \
        [("s1", name, str(ONSET), str(OFFSET)) for name in "abc"]
    assert "3 videos: 3 done; 3 expressions in" in capsys.readouterr().out

    # Ground truth written by hand: a's and b's expressions where the stand-in puts them, c's
    # elsewhere (frames 20..25), and one more in b. Two of four found, two of three right.
    gt = tmp_path / "gt.csv"
    gt.write_text("subject,video,onset,offset,type,emotion\n"
                  f"s1,a,{ONSET},{OFFSET},micro,surprise\ns1,b,{ONSET},{OFFSET},micro,surprise\n"
                  "s1,b,12,16,micro,surprise\ns1,c,20,25,micro,surprise\n")
    capsys.readouterr()
    assert main(["evaluate", "--gt", str(gt), "--pred", str(out / "detections.csv"), "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    overall = scores["spotting"]["overall"]
    assert (overall["tp"], overall["fp"], overall["fn"]) == (2, 1, 2)


def test_same_name_in_different_folders_do_not_collide(tmp_path, stand_in):
    _clip(tmp_path / "a" / "clip.mp4", shade=1)
    _clip(tmp_path / "b" / "clip.mp4", shade=2)
    out = tmp_path / "out"
    assert _detect(tmp_path / "a" / "clip.mp4", tmp_path / "b" / "clip.mp4", "--out", out) == 0
    for folder in "ab":
        result = json.loads((out / f"{folder}__clip.json").read_text())
        assert Path(result["video"]) == tmp_path / folder / "clip.mp4"
        assert (out / f"{folder}__clip_timeline.png").is_file()
    assert sorted(r["subject"] for r in _rows(out / "detections.csv")) == ["a", "b"]
    assert not (out / "clip.json").exists()


def test_failed_video_is_named_and_left_out_of_the_pool(tmp_path, stand_in, monkeypatch, capsys):
    for k, name in enumerate(("a", "b", "c")):
        _clip(tmp_path / "clips" / f"{name}.mp4", shade=k)
    monkeypatch.setenv("STANDIN_FAIL", "b")
    out = tmp_path / "out"
    assert _detect(tmp_path / "clips", "--out", out, "--report") == 2
    assert "1 of 3 videos failed: b" in capsys.readouterr().err
    assert sorted(r["video"] for r in _rows(out / "detections.csv")) == ["a", "c"]
    index = (out / "index.html").read_text()
    assert "failed: " in index and "planted" in index and 'href="a_report.html"' in index


# ---------------------------------------------------------------- torchrun
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_batch_split_over_two_processes_each_video_once(tmp_path):
    """Two processes as torchrun starts them (RANK, WORLD_SIZE, MASTER_ADDR/PORT): each video is
    done by one of them, and rank 0 alone writes the pooled CSV, with every video's rows."""
    names = ["a", "b", "c", "d", "e"]
    for k, name in enumerate(names):
        _clip(tmp_path / "clips" / f"{name}.mp4", shade=k)
    out, log = tmp_path / "out", tmp_path / "standin.log"
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import test_detect_batch as t; t.use_stand_in(); "
            "from visionattn.cli import main; sys.exit(main(sys.argv[2:]))")
    port = str(_free_port())
    procs = []
    for rank in (0, 1):
        env = dict(os.environ, RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                   MASTER_PORT=port, STANDIN_LOG=str(log), PYTHONPATH=os.pathsep.join([str(ROOT), str(TESTS)]))
        procs.append(subprocess.Popen([sys.executable, "-c", code, str(TESTS), "detect", str(tmp_path / "clips"),
                                       "--out", str(out), "--no-progress", "--timeout", "2"],
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    done = [line.split() for line in log.read_text().splitlines()]
    assert sorted(Path(path).stem for _, path in done) == names  # each video once
    assert {rank for rank, _ in done} == {"0", "1"}  # both processes worked
    assert sorted(r["video"] for r in _rows(out / "detections.csv")) == names
    assert "5 videos: 5 done" in outputs[0][0] and "5 done" not in outputs[1][0]  # written by rank 0 only


# ---------------------------------------------------------------- --fps, --start/--end
def test_frame_folder_times_follow_fps(tmp_path):
    folder = _frame_folder(tmp_path / "006_1", 40)
    frames = list(iter_timed_frames(folder, fps=200.0))
    assert [i for i, _, _ in frames] == list(range(1, 41))
    assert [t for _, t, _ in frames] == pytest.approx([k / 200 for k in range(40)])
    part = list(iter_timed_frames(folder, fps=200.0, start_s=0.05, end_s=0.1))  # positions 10..19
    assert [i for i, _, _ in part] == list(range(11, 21))
    # resampled to 30 fps from the part's first frame: step k shows the frame nearest 0.05 + k / 30
    steps = list(resample(iter(part), 30.0))
    expected = [int(np.argmin([abs(t - (0.05 + k / 30)) for _, t, _ in part])) + 11 for k in range(len(steps))]
    assert [index for _, index, _, _ in steps] == expected and len(steps) == 2


def test_video_part_keeps_the_whole_videos_numbers_and_times(tmp_path):
    video = _clip(tmp_path / "v.mp4")  # 30 frames at 25 fps: frame k at k / 25 s
    part = list(iter_timed_frames(video, start_s=0.4, end_s=0.8))
    assert [i for i, _, _ in part] == list(range(10, 20))
    assert [t for _, t, _ in part] == pytest.approx([k / 25 for k in range(10, 20)], abs=1e-3)
    with pytest.raises(UserError, match="no frame from 5 s"):
        list(iter_timed_frames(video, start_s=5.0))


@pytest.mark.parametrize("kwargs, message", [({"start_s": -1.0}, "--start -1"), ({"start_s": 2.0, "end_s": 1.0}, "--end 1"),
                                             ({"fps": 0.0}, "--fps 0")])
def test_bad_part_is_refused(kwargs, message):
    with pytest.raises(UserError, match=message):
        VideoPart(**kwargs)


def test_fps_and_start_end_reach_the_detector(tmp_path, stand_in):
    folder = _frame_folder(tmp_path / "samm" / "006_1", 100)
    out = tmp_path / "out"
    assert _detect(folder, "--out", out, "--fps", "200", "--start", "0.1", "--end", "0.3") == 0
    result = json.loads((out / "006_1.json").read_text())
    # 200 fps, 0.1 s .. 0.3 s: positions 20..59, i.e. images 21..60; the 3rd is image 23
    assert result["fps"] == 200 and result["frame_count"] == 40 and result["part_s"] == [0.1, 0.3]
    interval = result["intervals"][0]
    assert (interval["onset"], interval["onset_s"]) == (23, pytest.approx(22 / 200))
    # another part, or another rate, into the same folder is read again, not skipped
    assert _detect(folder, "--out", out, "--fps", "100", "--start", "0.1", "--end", "0.3") == 0
    result = json.loads((out / "006_1.json").read_text())
    assert result["fps"] == 100 and result["frame_count"] == 20
    assert _detect(folder, "--out", out, "--fps", "100") == 0
    assert json.loads((out / "006_1.json").read_text())["frame_count"] == 100


# ---------------------------------------------------------------- real detector
def test_real_detector_part_of_carphone(tmp_path):
    """The flow method on carphone's 1 s .. 3 s (29.97 fps: frames 31..90, 1-based): numbers and
    times of the whole video, nothing outside the part; the annotated video holds the part."""
    import av

    out = tmp_path / "out"
    assert _detect(carphone_or_skip(), "--out", out, "--method", "flow", "--start", "1", "--end", "3",
                   "--annotate", "--report") == 0
    result = json.loads((out / "carphone_pristine.json").read_text())
    assert result["part_s"] == [1.0, 3.0] and result["frame_count"] == 60
    for first, last in result["frames_without_face"]:
        assert 31 <= first <= last <= 90
    for interval in result["intervals"]:
        assert 31 <= interval["onset"] <= interval["offset"] <= 90 and 1.0 <= interval["onset_s"] < 3.0
    signals = np.load(out / "carphone_pristine_signals.npz")
    assert signals["times_s"][0] == pytest.approx(31 / (30000 / 1001) - 1 / (30000 / 1001), abs=2e-3)
    assert signals["times_s"][-1] < 3.0
    with av.open(str(out / "carphone_pristine_annotated.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == 60
    page = (out / "carphone_pristine_report.html").read_text()
    data = json.loads(page.split('id="report-data">')[1].split("</script>")[0])
    assert data["videoStart"] == pytest.approx(30 * 1001 / 30000, abs=2e-3)  # frame 31's time
    assert data["axis"][0] == pytest.approx(1.0)  # the timeline starts at the part


def test_real_detector_folder_of_three_clips(tmp_path, capsys):
    """Three real clips (carphone's thirds, as frame folders named by frame number) through the
    flow method: three results, and a pooled CSV holding exactly their rows, which evaluate reads."""
    from visionattn.data.frames import iter_frames

    frames = [frame for _, frame in iter_frames(carphone_or_skip())]
    for k in range(3):
        folder = tmp_path / "clips" / "s1" / f"third{k}"
        folder.mkdir(parents=True)
        for n in range(40):
            cv2.imwrite(str(folder / f"img{40 * k + n + 1}.png"), frames[40 * k + n])
    out = tmp_path / "out"
    assert _detect(tmp_path / "clips", "--out", out, "--method", "flow") == 0
    assert sorted(p.stem for p in out.glob("*.json")) == ["third0", "third1", "third2"]
    pooled = _rows(out / "detections.csv")
    assert len(pooled) == sum(len(_rows(out / f"third{k}.csv")) for k in range(3))
    gt = tmp_path / "gt.csv"
    gt.write_text("subject,video,onset,offset,type,emotion\ns1,third1,50,60,macro,positive\n")
    capsys.readouterr()
    assert main(["evaluate", "--gt", str(gt), "--pred", str(out / "detections.csv"), "--json"]) == 0
    overall = json.loads(capsys.readouterr().out)["spotting"]["overall"]
    assert overall["tp"] + overall["fn"] == 1  # the one ground-truth expression, found or not
