"""`visionattn synth` writes a CAS(ME)^2-layout dataset that the real loader reads back."""
import json

import cv2
import numpy as np
import pandas as pd
import pytest

from visionattn.cli import main
from visionattn.data.datasets import load_table
from visionattn.data.synthetic import EMOTION_PATTERNS, SynthConfig, generate, plan_events


def synth(out, *extra):
    args = ["synth", "--out", str(out), "--subjects", "3", "--videos-per-subject", "2", "--seconds", "12",
            "--seed", "5", *extra]
    assert main(args) == 0


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "ds"
    synth(out)
    return out


def test_loader_reads_back_what_synth_wrote(dataset):
    table = load_table("synthetic", dataset)
    gt = pd.read_csv(dataset / "ground_truth.csv", dtype={"video": str})
    assert len(table) == len(gt) > 0
    columns = ["subject", "video", "onset", "apex", "offset", "type", "emotion"]
    assert table[columns].values.tolist() == gt[columns].values.tolist()
    assert sorted(table["subject"].unique()) == ["s15", "s16", "s19"]  # CAS(ME)^2's folder names
    assert set(table["video"]) == {"0101", "0102"}
    assert (table["n_frames"] == 12 * 30).all()
    assert set(table["emotion"]) <= set(EMOTION_PATTERNS)
    assert (table["onset"] <= table["apex"]).all() and (table["apex"] <= table["offset"]).all()
    frame = cv2.imread(str(next((dataset / "rawpic" / "s15").iterdir()) / "img1.jpg"))
    assert frame.shape == (240, 320, 3)
    meta = json.loads((dataset / "synth.json").read_text())
    assert meta["complete"] and meta["expressions"] == len(table)


def test_event_durations_and_types():
    cfg = SynthConfig(seconds=600)
    events = plan_events(int(cfg.seconds * cfg.fps), cfg, np.random.default_rng(0))
    macro = [e for e in events if e.type == "macro"]
    micro = [e for e in events if e.type == "micro"]
    assert macro and micro
    assert all(15 <= e.offset - e.onset + 1 <= 120 for e in macro)  # 0.5-4 s at 30 fps
    assert all(e.offset - e.onset + 1 < 15 for e in micro)  # under 0.5 s
    assert max(e.amplitude for e in micro) < min(e.amplitude for e in macro)
    spans = sorted((e.onset, e.offset) for e in events)
    assert all(b[0] > a[1] for a, b in zip(spans, spans[1:]))  # no overlaps


def test_deterministic_for_a_seed_and_different_across_seeds(tmp_path, dataset):
    synth(tmp_path / "again")
    a = (dataset / "ground_truth.csv").read_text()
    assert (tmp_path / "again" / "ground_truth.csv").read_text() == a
    img = "rawpic/s16/16_0102disgust2/img100.jpg"
    assert (tmp_path / "again" / img).read_bytes() == (dataset / img).read_bytes()
    synth(tmp_path / "other", "--seed", "6")
    assert (tmp_path / "other" / "ground_truth.csv").read_text() != a


def test_subjects_look_different(dataset):
    firsts = [cv2.imread(str(next((dataset / "rawpic" / s).iterdir()) / "img1.jpg")).astype(float)
              for s in ("s15", "s16", "s19")]
    assert min(np.abs(a - b).mean() for i, a in enumerate(firsts) for b in firsts[i + 1:]) > 10


def test_expressions_move_the_face_more_than_quiet_time(dataset):
    table = load_table("casme2", dataset)

    def face(source, n):
        # blurred, normalised face region: drift texture and the lighting distractor do not
        # count as motion, a deformation of the brows or mouth does
        img = cv2.imread(f"{source}/img{n}.jpg", cv2.IMREAD_GRAYSCALE)[50:190, 90:230].astype(float)
        img = cv2.GaussianBlur(img, (0, 0), 2)
        return (img - img.mean()) / img.std()

    def change(source, a, b):
        return np.abs(face(source, a) - face(source, b)).mean()

    moved, quiet = [], []
    for source, events in table[table["type"] == "macro"].groupby("source"):
        for _, ev in events.iterrows():
            span = ev["apex"] - ev["onset"]
            moved.append(change(source, ev["onset"], ev["apex"]))
            # frame pairs the same distance apart with no expression anywhere in between
            busy = [(s - span, e) for s, e in zip(table.loc[table["source"] == source, "onset"],
                                                  table.loc[table["source"] == source, "offset"])]
            for n in range(1, 360 - span, 20):
                if all(n > e or n < s for s, e in busy):
                    quiet.append(change(source, n, n + span))
    assert np.median(moved) > 1.5 * np.median(quiet)


def test_resume_regenerates_only_missing_videos(tmp_path):
    out = tmp_path / "ds"
    synth(out)
    victim = out / "rawpic" / "s16" / "16_0101disgust1"
    keep = out / "rawpic" / "s15" / "15_0101disgust1" / "img1.jpg"
    before = victim.joinpath("img50.jpg").read_bytes()
    mtime = keep.stat().st_mtime_ns
    import shutil

    shutil.rmtree(victim)
    (victim.parent / (victim.name + ".partial")).mkdir()  # leftovers of an interrupted run
    synth(out)
    assert victim.joinpath("img50.jpg").read_bytes() == before
    assert keep.stat().st_mtime_ns == mtime
    assert not (victim.parent / (victim.name + ".partial")).exists()


def test_refuses_to_mix_settings_and_bad_size(tmp_path, capsys):
    out = tmp_path / "ds"
    synth(out)
    assert main(["synth", "--out", str(out), "--subjects", "2", "--seconds", "12"]) == 2
    assert "other settings" in capsys.readouterr().err
    assert main(["synth", "--out", str(tmp_path / "x"), "--size", "big"]) == 2
    assert "--size 'big'" in capsys.readouterr().err


def test_video_format_is_read_back(tmp_path):
    cfg = SynthConfig(subjects=2, videos_per_subject=1, seconds=10, format="video")
    generate(tmp_path / "v", cfg, log=lambda *_: None)
    table = load_table("casme2", tmp_path / "v")
    assert table["source"].str.endswith(".mp4").all()
    assert (table["n_frames"] == 300).all()
