"""Train and record the FEDN model that ships in the package (``tools/build_bundled_model.py``).

The model is trained as the "FEDN" row of ``visionattn benchmark-fedn`` (same recipe), on the split
the shipped file was made with: ``visionattn synth --seed 0``, 10 subjects, the last 2 held out
(the benchmark's default split has since grown to 14 subjects, 4 held out, for steadier figures).
The record's ``info`` carries the recipe (the YAML files and their contents), a description of
the training data, the held-out figures and a digest of the weights; ``tests/test_detect_real.py``
checks the shipped file against it.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from ..inference.bundled import BUNDLED_MODEL, weights_digest
from ..inference.record import read_record
from .fedn_accuracy import ROWS, data_overrides, make_dataset, recipe, score_run, split_subjects, train_row

# The split of the shipped file (its record's figures are on s25, s26).
SUBJECTS, VIDEOS_PER_SUBJECT, SECONDS, HELD_OUT = 10, 2, 60.0, 2


def build(work: Path, out: Optional[str] = None, seed: int = 0) -> Path:
    root, cache = work / "synth", work / "cache"
    make_dataset(root, SUBJECTS, VIDEOS_PER_SUBJECT, SECONDS, seed)
    test_subjects = split_subjects(root, HELD_OUT)
    record_of_run = train_row("FEDN", ROWS["FEDN"], work, data_overrides(root, cache, test_subjects))
    run_dir = Path(record_of_run["run_dir"])
    report = score_run(root, run_dir, test_subjects)
    best = sorted((run_dir / "checkpoints").glob("epoch=*.ckpt"))
    checkpoint = best[-1] if best else run_dir / "checkpoints" / "last.ckpt"
    record = read_record(checkpoint)
    sp = report["spotting"]
    summary = json.loads((root / "synth.json").read_text())
    record.info = {
        "name": "FEDN (bundled, synthetic training)",
        "recipe": {Path(p).name: Path(p).read_text() for p in recipe()},
        "training_data": (f"`visionattn synth --seed {seed}`: {SUBJECTS} synthetic subjects x {VIDEOS_PER_SUBJECT} "
                          f"videos of {SECONDS:g} s at 30 fps ({summary['expressions']} expressions, "
                          f"{summary['micro']} micro), an animated real face photo (skimage astronaut) with "
                          f"action-unit deformations; trained on {SUBJECTS - HELD_OUT - 2} subjects, epoch and "
                          f"thresholds chosen on 2 validation subjects, tested on {', '.join(test_subjects)}"),
        "held_out": {"subjects": test_subjects, "f1": round(sp["overall"]["f1"], 4),
                     "f1_micro": round(sp["micro"]["f1"], 4), "f1_macro": round(sp["macro"]["f1"], 4),
                     "strs": round(report["strs"], 4), "map": round(report["map"]["average"], 4)},
        "weights_sha256": weights_digest(record.state_dict),
    }
    path = record.save(Path(out) if out else BUNDLED_MODEL)
    print(f"bundled model -> {path} ({path.stat().st_size / 1e6:.1f} MB); held-out {record.info['held_out']}")
    return path
