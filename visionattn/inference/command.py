"""``visionattn detect``: facial expressions in your own videos with a trained FEDN checkpoint.

    visionattn detect my_video.mp4 --checkpoint outputs/demo/fedn.ckpt --out outputs/detect

For each video it writes ``<name>.json`` (intervals in frames and seconds, type, emotion,
score; fps, frame count, frames without a face), ``<name>.csv`` (MEGC rows),
``<name>_timeline.png`` and, with ``--annotate``, ``<name>_annotated.mp4``. A video whose
outputs are already there (and newer than the video and the checkpoint) is skipped, so a
rerun finishes what an interrupted one left. A video that cannot be read is reported in one
line and the others still run; the exit status is then non-zero.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional, Sequence

from ..utils import UserError
from ..utils.io import PathLike


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("videos", nargs="+", metavar="VIDEO",
                        help="video files OpenCV can open (or folders of numbered frames)")
    parser.add_argument("--checkpoint", required=True, help="a `visionattn train` checkpoint (.ckpt)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument("--batch-size", type=int, default=64, help="face crops per frame-encoder batch")
    parser.add_argument("--annotate", action="store_true", help="also write <name>_annotated.mp4")
    parser.add_argument("--threshold", type=float, default=None,
                        help="score threshold (default: the one chosen on validation subjects in training)")
    parser.add_argument("--window", type=int, default=None, help="temporal window in frames (default: training's)")
    parser.add_argument("--overlap", type=int, default=None, help="frames shared by neighbouring windows")
    parser.add_argument("--encoder-checkpoint", default=None,
                        help="the frame encoder's weights file, if it moved since training")
    parser.add_argument("--force", action="store_true", help="redo videos whose outputs exist")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def outputs_for(out: Path, video: str) -> dict:
    name = Path(video).stem if Path(video).suffix else Path(video).name
    return {"json": out / f"{name}.json", "csv": out / f"{name}.csv", "timeline": out / f"{name}_timeline.png",
            "annotated": out / f"{name}_annotated.mp4"}


def _up_to_date(paths: dict, inputs: List[Path], annotate: bool) -> bool:
    wanted = [paths[k] for k in ("json", "csv", "timeline")] + ([paths["annotated"]] if annotate else [])
    if not all(p.is_file() for p in wanted):
        return False
    newest_input = max(p.stat().st_mtime for p in inputs if p.exists())
    return min(p.stat().st_mtime for p in wanted) >= newest_input


def summary_line(result) -> str:
    if not result.face_found:
        return f"{result.video}: no face found in {result.frame_count} frames; empty result written"
    micro = sum(i.type == "micro" for i in result.intervals)
    return (f"{result.video}: {len(result.intervals)} expressions ({micro} micro, {len(result.intervals) - micro} "
            f"macro) in {result.duration_s:.1f} s")


def detect(videos: Sequence[str], out: PathLike, checkpoint: PathLike, device: str = "cpu", batch_size: int = 64,
           annotate: bool = False, threshold: Optional[float] = None, window: Optional[int] = None,
           overlap: Optional[int] = None, encoder_checkpoint: Optional[str] = None, force: bool = False,
           progress: bool = True) -> List[Path]:
    """Detect expressions in ``videos`` with the detector recorded in ``checkpoint`` and write each
    video's outputs into ``out``; returns the JSON paths. The arguments are the command's flags."""
    from .annotate import write_annotated
    from .detector import ExpressionDetector
    from .record import read_record
    from .timeline import draw_timeline

    if batch_size < 1:
        raise UserError(f"--batch-size {batch_size}: must be >= 1")
    out = Path(out)
    names = {}
    for video in videos:
        key = outputs_for(out, video)["json"]
        if key in names:
            raise UserError(f"{video} and {names[key]} would write the same {key.name}: run them separately")
        names[key] = video
    record = read_record(checkpoint)
    detector = ExpressionDetector(record, device=device, batch_size=batch_size, window=window, overlap=overlap,
                                  threshold=threshold, encoder_checkpoint=encoder_checkpoint)
    out.mkdir(parents=True, exist_ok=True)
    failed, written = [], []
    for video in videos:
        paths = outputs_for(out, video)
        if not force and _up_to_date(paths, [Path(video), Path(checkpoint)], annotate):
            print(f"{video}: outputs exist, skipped (--force redoes them)")
            written.append(paths["json"])
            continue
        try:
            result, boxes = detector.detect(video, progress=progress)
            result.write_csv(paths["csv"])
            draw_timeline(result, paths["timeline"])
            if annotate:
                write_annotated(video, result, boxes, paths["annotated"], progress=progress)
            result.write_json(paths["json"])  # last: its presence marks the video as done
        except UserError as err:
            print(f"visionattn detect: error: {err}", file=sys.stderr)
            failed.append(video)
            continue
        print(summary_line(result))
        written.append(paths["json"])
    if failed:
        raise UserError(f"{len(failed)} of {len(videos)} videos failed: {', '.join(failed)}")
    return written


def run(args: argparse.Namespace) -> List[Path]:
    return detect(args.videos, args.out, args.checkpoint, device=args.device, batch_size=args.batch_size,
                  annotate=args.annotate, threshold=args.threshold, window=args.window, overlap=args.overlap,
                  encoder_checkpoint=args.encoder_checkpoint, force=args.force, progress=not args.no_progress)
