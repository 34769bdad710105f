"""``visionattn detect``: facial expressions in anyone's video.

    visionattn detect my_video.mp4                                  # the appearance spotter (training-free)
    visionattn detect my_video.mp4 --method fedn                    # the bundled FEDN model
    visionattn detect my_video.mp4 --method flow                    # training-free optical-flow spotter
    visionattn detect my_video.mp4 --checkpoint outputs/demo/fedn.ckpt --gt my_gt.csv

For each video it writes ``<name>.json`` (intervals in frames and seconds, type, emotion,
score; the method or model and its thresholds, the frame numbering, frames without a face, shot
cuts), ``<name>.csv`` (rows ``visionattn evaluate`` reads), ``<name>_timeline.png`` (motion
energy, emotion probabilities, intervals, cuts, frames without a face; with ``--gt``, the
ground truth beside them), ``<name>_signals.npz`` (those curves) and, with ``--annotate``,
``<name>_annotated.mp4``. Frame numbers are those of the annotation files: a video file's
frames count from 1, a frame folder's keep their own numbers. A video whose outputs are
already there (and newer than the video and the model) is skipped, so a rerun finishes what an
interrupted one left. A video that cannot be read is reported in one line and the others still
run; the exit status is then non-zero.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional, Sequence

from ..utils import UserError, counted
from ..utils.io import PathLike

METHODS = ("appearance", "fedn", "flow")
DEFAULT_METHOD = "appearance"  # the best method on `visionattn benchmark-real` (docs/benchmarks_real.md)
TRAINING_FREE = ("appearance", "flow")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("videos", nargs="+", metavar="VIDEO",
                        help="video files OpenCV can open (or folders of numbered frames)")
    parser.add_argument("--method", choices=METHODS, default=None,
                        help=f"appearance: the training-free spotter reading the appearance network against the "
                             f"face's own neutral, onsets confirmed by motion; fedn: the FEDN model of --checkpoint, "
                             f"or the bundled one; flow: the training-free optical-flow spotter (default: "
                             f"{DEFAULT_METHOD}, the best on `visionattn benchmark-real`; fedn with --checkpoint)")
    parser.add_argument("--checkpoint", default=None,
                        help="a `visionattn train` checkpoint (.ckpt) or detector record (default: the bundled model)")
    parser.add_argument("--gt", default=None, help="ground-truth CSV (`visionattn annotations` / evaluate layout) "
                                                   "to draw beside the detections")
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
            "signals": out / f"{name}_signals.npz", "annotated": out / f"{name}_annotated.mp4"}


def _up_to_date(paths: dict, inputs: List[Path], annotate: bool) -> bool:
    wanted = [paths[k] for k in ("json", "csv", "timeline", "signals")] + ([paths["annotated"]] if annotate else [])
    if not all(p.is_file() for p in wanted):
        return False
    newest_input = max(p.stat().st_mtime for p in inputs if p.exists())
    return min(p.stat().st_mtime for p in wanted) >= newest_input


def summary_line(result) -> str:
    if not result.face_found:
        return f"{result.video}: no face found in {result.frame_count} frames; empty result written"
    micro = sum(i.type == "micro" for i in result.intervals)
    no_face = sum(last - first + 1 for first, last in result.frames_without_face)
    cuts, found = len(result.shot_cuts), len(result.intervals)
    notes = "".join([f"; {counted(cuts, 'shot cut')}" if cuts else "",
                     f"; {counted(no_face, 'frame')} without a face" if no_face else ""])
    return (f"{result.video}: {counted(found, 'expression')} ({micro} micro, "
            f"{found - micro} macro) in {result.duration_s:.1f} s ({result.method}){notes}")


def detect(videos: Sequence[str], out: PathLike, checkpoint: Optional[PathLike] = None, method: Optional[str] = None,
           device: str = "cpu", batch_size: int = 64, annotate: bool = False, threshold: Optional[float] = None,
           window: Optional[int] = None, overlap: Optional[int] = None, encoder_checkpoint: Optional[str] = None,
           gt: Optional[PathLike] = None, force: bool = False, progress: bool = True) -> List[Path]:
    """Detect expressions in ``videos`` and write each video's outputs into ``out``; returns the
    JSON paths. The arguments are the command's flags (``method`` None: fedn with a checkpoint, else
    :data:`DEFAULT_METHOD`)."""
    from .annotate import write_annotated
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
    truths = _read_truths(gt) if gt else None
    method = method or ("fedn" if checkpoint is not None else DEFAULT_METHOD)
    detector, model_file = _detector(method, checkpoint, device, batch_size, threshold, window, overlap,
                                     encoder_checkpoint)
    out.mkdir(parents=True, exist_ok=True)
    failed, written = [], []
    for video in videos:
        paths = outputs_for(out, video)
        inputs = [Path(video)] + ([model_file] if model_file else []) + ([Path(gt)] if gt else [])
        if not force and _up_to_date(paths, inputs, annotate):
            print(f"{video}: outputs exist, skipped (--force redoes them)")
            written.append(paths["json"])
            continue
        try:
            result, boxes, signals = detector.detect(video, progress=progress)
            result.write_csv(paths["csv"])
            signals.save_npz(paths["signals"])
            draw_timeline(result, paths["timeline"], signals=signals,
                          truths=_truths_of(truths, video) if truths is not None else None)
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


def _detector(method: str, checkpoint: Optional[PathLike], device: str, batch_size: int, threshold: Optional[float],
              window: Optional[int], overlap: Optional[int], encoder_checkpoint: Optional[str]):
    """The detector for ``method`` and the model file whose changes make outputs stale."""
    if method in TRAINING_FREE:
        if checkpoint is not None:
            raise UserError(f"--checkpoint: the {method} method learns nothing and takes no checkpoint")
        from .detector import AppearanceDetector, FlowDetector

        tool = AppearanceDetector if method == "appearance" else FlowDetector
        return tool(batch_size=batch_size, device=device), None
    if method != "fedn":
        raise UserError(f"--method {method!r}: choose one of {', '.join(METHODS)}")
    from .bundled import BUNDLED_MODEL, bundled_record
    from .detector import ExpressionDetector
    from .record import read_record

    record = read_record(checkpoint) if checkpoint is not None else bundled_record()
    model_file = Path(checkpoint) if checkpoint is not None else BUNDLED_MODEL
    detector = ExpressionDetector(record, device=device, batch_size=batch_size, window=window, overlap=overlap,
                                  threshold=threshold, encoder_checkpoint=encoder_checkpoint, source=str(model_file))
    return detector, model_file


def _read_truths(path: PathLike):
    from ..evaluation import read_intervals_csv

    return read_intervals_csv(path, require_score=False)


def _truths_of(truths, video: str) -> list:
    """The ground-truth rows of ``video``: those whose video is its file or folder name (and, when
    the rows name subjects, whose subject is its parent folder's name or absent)."""
    path = Path(video)
    name = path.stem if path.suffix else path.name
    parent = path.resolve().parent.name
    return [t for t in truths if t.video == name and t.subject in (parent, "", "-")] or \
        [t for t in truths if t.video == name]


def run(args: argparse.Namespace) -> List[Path]:
    return detect(args.videos, args.out, args.checkpoint, method=args.method, device=args.device,
                  batch_size=args.batch_size, annotate=args.annotate, threshold=args.threshold, window=args.window,
                  overlap=args.overlap, encoder_checkpoint=args.encoder_checkpoint, gt=args.gt, force=args.force,
                  progress=not args.no_progress)
