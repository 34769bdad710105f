"""``visionattn demo``'s scoring reads the outputs ``visionattn detect`` wrote for a batch, under
the names detect gives them (two held-out videos that share a file name take their subject
folder's name before it: docs/detect_report.md)."""
from __future__ import annotations

import json
from pathlib import Path

from visionattn.demo import score


def test_demo_scores_the_outputs_under_the_names_detect_gives_them(tmp_path):
    root = tmp_path / "synth"
    videos = {}
    for subject in ("s23", "s24"):
        path = root / "rawpic" / subject / "clip.mp4"
        path.parent.mkdir(parents=True)
        path.write_bytes(b"")
        videos[str(path)] = (subject, "0101")
    (root / "ground_truth.csv").write_text("subject,video,onset,offset,type,emotion\n"
                                           "s23,0101,10,20,micro,surprise\n"
                                           "s24,0101,30,60,macro,positive\n")
    detect_dir = tmp_path / "detect"
    detect_dir.mkdir()
    found = {"s23__clip": (10, 20, "micro", "surprise"), "s24__clip": (30, 60, "macro", "negative")}
    for name, (onset, offset, kind, emotion) in found.items():
        (detect_dir / f"{name}.json").write_text(json.dumps({"intervals": [
            {"onset": onset, "offset": offset, "type": kind, "emotion": emotion, "score": 0.9}]}))
    report = score(root, detect_dir, videos)
    # both spotted (IoU 1); the emotions: one right of two
    assert report["spotting"]["overall"]["f1"] == 1.0
    assert report["strs"] < 1.0
