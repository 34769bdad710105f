"""Speed of ``visionattn detect`` per stage on a 640x480, 30 fps video: ``visionattn benchmark-detect``.

Stages, each timed on its own over the same frames: decoding (OpenCV), face detection and
tracking with cropping, frame features (the frozen encoder, batched), and the temporal model
(FEDN over overlapping windows). Then the whole tool end to end, streaming, as a user runs
it. Frames per second are reported per stage and end to end, with the end-to-end speed as a
multiple of real time (the target is at least 2x on a 2-core CPU).

The weights do not change the speed: without ``--checkpoint`` a randomly initialised FEDN
with the synthetic recipe's settings (``configs/fedn/synthetic.yaml``) is timed.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from ..utils import atomic_write_json, atomic_write_text

TARGET_REALTIME = 2.0


def make_video(out: Path, seconds: float) -> Path:
    from ..data.synthetic import SynthConfig, generate

    root = out / "video_640x480"
    generate(root, SynthConfig(subjects=1, videos_per_subject=1, seconds=seconds, width=640, height=480,
                               format="video"), log=lambda *_: None)
    return next((root / "rawpic").rglob("*.mp4"))


def default_detector(device: str, batch_size: int):
    """A random FEDN with the synthetic recipe's model and feature settings (no checkpoint needed)."""
    import yaml

    from ..features.extraction import FrameFeatureExtractor
    from ..features.settings import FeatureSettings
    from ..inference.detector import ExpressionDetector
    from ..inference.record import DEFAULT_WINDOW, DetectorRecord
    from ..models.fedn import FEDN, FEDNConfig
    from .fedn_accuracy import CONFIG_DIR

    base = yaml.safe_load((CONFIG_DIR / "base.yaml").read_text())
    synth = yaml.safe_load((CONFIG_DIR / "synthetic.yaml").read_text())
    fedn = dict(base["model"]["fedn"], **(synth.get("model", {}) or {}).get("fedn", {}))
    # Speed does not depend on the encoder's weights: a random one needs no pretraining run.
    settings = FeatureSettings(**{k: v for k, v in synth["data"]["features"].items() if k != "pretrain"})
    config = FEDNConfig(**fedn, feature_dim=FrameFeatureExtractor(settings).dim)
    torch.manual_seed(0)
    record = DetectorRecord(model=config, features=settings, thresholds={t: 0.5 for t in config.type_names},
                            window=int(synth["data"].get("window", DEFAULT_WINDOW)), fps=30.0,
                            state_dict=FEDN(config).state_dict())
    return ExpressionDetector(record, device=device, batch_size=batch_size)


def run(args: argparse.Namespace) -> dict:
    from ..data.frames import iter_timed_frames
    from ..inference.detector import ExpressionDetector
    from ..inference.record import read_record
    from ..inference.stitching import WindowStitcher

    torch.set_num_threads(args.threads or torch.get_num_threads())
    out = Path(args.out)
    video = make_video(out, args.seconds)
    if args.checkpoint:
        detector = ExpressionDetector(read_record(args.checkpoint), device=args.device,
                                      batch_size=args.batch_size)
    else:
        detector = default_detector(args.device, args.batch_size)
    s = detector.settings

    start = time.perf_counter()
    frames = [image for _, _, image in iter_timed_frames(video)]
    decode = len(frames) / (time.perf_counter() - start)
    n = len(frames)

    pipeline = s.face_pipeline()
    start = time.perf_counter()
    crops = np.stack([c.image for c in pipeline.process(enumerate(frames))])
    face = n / (time.perf_counter() - start)
    del frames

    detector.extractor(crops[: args.batch_size])  # warm-up (allocator, oneDNN kernels)
    start = time.perf_counter()
    feats = np.concatenate([detector.extractor(crops[i:i + args.batch_size]) for i in range(0, n, args.batch_size)])
    features = n / (time.perf_counter() - start)

    stitcher = WindowStitcher(detector.predict_window, detector.window, detector.overlap, detector.thresholds)
    start = time.perf_counter()
    for i in range(0, n, args.batch_size):
        stitcher.push(feats[i:i + args.batch_size])
    stitcher.finish()
    temporal = n / (time.perf_counter() - start)

    start = time.perf_counter()
    result, _ = detector.detect(str(video), progress=False)
    end_to_end = result.frame_count / (time.perf_counter() - start)

    fps = 30.0
    rows = {"decode": decode, "face": face, "features": features, "temporal": temporal, "end to end": end_to_end}
    report = {"video": str(video), "frames": n, "size": "640x480", "video_fps": fps, "threads": torch.get_num_threads(),
              "device": args.device, "face_size": s.face_size, "detect_every": s.detect_every,
              "stages_fps": rows, "realtime_factor": end_to_end / fps, "target_realtime": TARGET_REALTIME}
    lines = [f"visionattn detect, {n} frames of a 640x480 {fps:g} fps video, {args.device}, "
             f"{torch.get_num_threads()} threads (face {s.face_size}px, detector every {s.detect_every} frames)", "",
             "| stage | frames/s | x real time |", "|---|---:|---:|"]
    lines += [f"| {k} | {v:.0f} | {v / fps:.1f} |" for k, v in rows.items()]
    lines.append(f"\nend to end: {end_to_end / fps:.2f}x real time (target >= {TARGET_REALTIME:g}x)")
    table = "\n".join(lines) + "\n"
    print(table)
    atomic_write_json(out / "detect_speed.json", report)
    atomic_write_text(out / "detect_speed.md", table)
    return report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="outputs/benchmark/detect")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the test video")
    parser.add_argument("--checkpoint", default=None, help="time a trained model instead of a random one")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
