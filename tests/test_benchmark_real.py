"""``visionattn benchmark-real`` end to end on one short spliced real clip (carphone frames 31-90,
then a title card), with two methods; its figures checked against the detections it wrote."""
import csv
import json

import pytest

from visionattn.benchmarks.real_clips import read_clips
from visionattn.cli import main
from visionattn.utils import UserError

from media import carphone_or_skip

TRUTH = (25, 42)  # the carphone's first surprise (55-72) in the splice


def iou(a, b):
    """MEGC interval IoU, inclusive frames (fedn.md, Metrics)."""
    inter = max(0, min(a[1], b[1]) - max(a[0], b[0]) + 1)
    return inter / ((a[1] - a[0] + 1) + (b[1] - b[0] + 1) - inter)


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    carphone_or_skip()
    folder = tmp_path_factory.mktemp("bench")
    (folder / "clips.csv").write_text("video,source,cuts,description\n"
                                      "title,splice:carphone_title,61,carphone then a title card\n")
    (folder / "gt.csv").write_text("subject,video,onset,offset,type,emotion\n"
                                   f"real,title,{TRUTH[0]},{TRUTH[1]},macro,surprise\n")
    out = folder / "out"
    code = main(["benchmark-real", "--clips", str(folder / "clips.csv"), "--gt", str(folder / "gt.csv"),
                 "--methods", "appearance,flow", "--out", str(out), "--no-progress"])
    return code, out


def test_benchmark_real_scores_what_detect_wrote(bench):
    code, out = bench
    assert code == 0
    report = json.loads((out / "benchmark_real.json").read_text())
    table = (out / "benchmark_real.md").read_text()
    for method in ("appearance", "flow"):
        assert f"| {method} | title |" in table and f"| **{method}** | **pooled** |" in table
        s = report["scores"][method]["title"]
        result = json.loads((out / method / "title.json").read_text())
        assert result["frame_count"] == 120  # 60 carphone frames + 60 of the card
        no_face = {f for a, b in result["frames_without_face"] for f in range(a, b + 1)}
        assert set(range(61, 121)) <= no_face  # the card
        with open(out / method / "title.csv", newline="") as f:
            rows = [(int(r["onset"]), int(r["offset"]), r["emotion"]) for r in csv.DictReader(f)]
        matched = [r for r in rows if iou(r[:2], TRUTH) >= 0.5][:1]
        assert s["intervals"] == len(rows) and s["matched"] == len(matched) and s["truths"] == 1
        assert s["no_face_intervals"] == sum(bool(no_face & set(range(a, b + 1))) for a, b, _ in rows) == 0
        assert s["emotion_right"] == sum(e == "surprise" for _, _, e in matched)
        overlapping = [e for a, b, e in rows if min(b, TRUTH[1]) >= max(a, TRUTH[0])]
        assert s["wrong_emotion"] == sum(e != "surprise" for e in overlapping)
        assert s["precision"] == pytest.approx(len(matched) / len(rows) if rows else 0.0)
        assert s["recall"] == pytest.approx(len(matched))
        tracked = (120 - len(no_face)) / result["fps"] / 60
        assert s["false_per_minute"] == pytest.approx((len(rows) - len(matched)) / tracked)
        assert (s["cuts"], s["cuts_found"]) == (1, 1)  # the cut to the card
        assert report["scores"][method]["pooled"]["f1"] == pytest.approx(s["f1"])


def test_the_default_method_is_the_best_on_the_documented_benchmark():
    """docs/benchmarks_real.md's pooled rows: the default `--method` has the highest F1."""
    from pathlib import Path

    from visionattn.inference.command import DEFAULT_METHOD, METHODS

    text = (Path(__file__).resolve().parents[1] / "docs" / "benchmarks_real.md").read_text()
    f1 = {}
    for line in text.splitlines():
        cells = [c.strip().strip("*") for c in line.strip().strip("|").split("|")]
        if len(cells) > 7 and cells[1] == "pooled":
            f1[cells[0]] = float(cells[7])
    assert set(f1) == set(METHODS)
    assert max(f1, key=f1.get) == DEFAULT_METHOD


def test_default_clip_list_and_annotation_agree(tmp_path):
    from visionattn.benchmarks.real_clips import DATA
    from visionattn.evaluation import read_intervals_csv

    clips = read_clips(DATA / "clips.csv")
    truths = read_intervals_csv(DATA / "annotations.csv", require_score=False)
    names = {c.video for c in clips}
    assert {t.video for t in truths} <= names and "carphone_pristine" in names
    carphone = sorted((t.onset, t.offset, t.emotion) for t in truths if t.video == "carphone_pristine")
    assert carphone == [(55, 72, "surprise"), (105, 120, "surprise")]  # the by-eye annotation
    bad = tmp_path / "bad.csv"
    bad.write_text("video,source,cuts\nx,y.mp4,twelve\n")
    with pytest.raises(UserError, match="line 2"):
        read_clips(bad)
