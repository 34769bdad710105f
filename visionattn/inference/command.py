"""``visionattn detect``: facial expressions in anyone's video.

    visionattn detect my_video.mp4 --out results                        # the bundled FEDN model
    visionattn detect my_video.mp4 --out results --method flow          # training-free optical-flow spotter
    visionattn detect clips/ --out results --report                     # a folder of videos; pages to look at
    visionattn detect SAMM_LV/006_1 --fps 200 --out results             # a 200 fps frame folder
    visionattn detect long.mp4 --start 600 --end 660 --out results      # one minute of a long video
    torchrun --nproc_per_node 4 -m visionattn.cli detect videos.txt --out results  # a batch on 4 processes

VIDEO arguments are video files, folders of numbered frames, folders of videos, globs and text
lists of paths (:mod:`.inputs` says how each is told apart). For each video it writes
``<name>.json`` (intervals in frames and seconds, type, emotion, score; the method or model and
its thresholds, the frame numbering, frames without a face, shot cuts), ``<name>.csv`` (rows
``visionattn evaluate`` reads), ``<name>_timeline.png`` (motion energy, emotion probabilities,
intervals, cuts, frames without a face; with ``--gt``, the ground truth beside them),
``<name>_signals.npz`` (those curves), with ``--annotate`` ``<name>_annotated.mp4`` and with
``--report`` ``<name>_report.html`` (:mod:`.report`). ``<name>`` is the file or folder name,
with parent folder names before it where two videos of the batch share one. For the batch:
``detections.csv``, every video's rows pooled (score them all with one ``visionattn evaluate``),
and with ``--report`` ``index.html``.

Frame numbers are those of the annotation files: a video file's frames count from 1, a frame
folder's keep their own numbers; ``--start/--end`` read part of a video and keep its numbers
and times. A video whose outputs are already there (and newer than the video and the model) is
skipped, so a rerun finishes what an interrupted one left. A video that cannot be read is
reported in one line and the others still run; the exit status is then non-zero.

Under torchrun or SLURM (:mod:`visionattn.utils.distributed`) the videos are split over the
processes, each done by one, and rank 0 writes the batch's files once every process is done.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional, Sequence

from ..data.frames import IMAGE_EXTENSIONS, VideoPart
from ..utils import UserError, counted
from ..utils.distributed import DEFAULT_TIMEOUT_MIN, launch_environment, local_device
from ..utils.io import PathLike
from .inputs import LIST_EXTENSIONS, VIDEO_EXTENSIONS, Clip, outputs_for

INPUTS_HELP = f"""\
VIDEO arguments (any number, mixed):
  a video file          read by OpenCV; frames numbered from 1
  a frame folder        a folder with images in it ({' '.join(sorted(IMAGE_EXTENSIONS))}),
                        read in the order of the last number in each name, which is the
                        frame's number; images carry no frame rate: give --fps
  a folder of videos    a folder without images in it: every video file
                        ({' '.join(sorted(VIDEO_EXTENSIONS))})
                        and every frame folder below it, at any depth
  a glob                quoted, e.g. 'clips/**/*.mp4': each match as above
  a list                a {' or '.join(sorted(LIST_EXTENSIONS))} file, one path or glob per line (relative
                        to the list's folder; blank lines and # comments skipped)
Each video's outputs are named after its file or folder; videos of the batch that share a
name take parent folder names before it (s15__anger1, s16__anger1)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = INPUTS_HELP
    parser.add_argument("videos", nargs="+", metavar="VIDEO",
                        help="video files, frame folders, folders of videos, globs or lists (see below)")
    parser.add_argument("--method", choices=("fedn", "flow"), default="fedn",
                        help="fedn: the FEDN model of --checkpoint, or the bundled one (default); flow: the "
                             "training-free optical-flow spotter")
    parser.add_argument("--checkpoint", default=None,
                        help="a `visionattn train` checkpoint (.ckpt) or detector record (default: the bundled model)")
    parser.add_argument("--gt", default=None, help="ground-truth CSV (`visionattn annotations` / evaluate layout) "
                                                   "to draw beside the detections")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--device", default="cpu",
                        help="cpu or cuda[:N] (cuda under torchrun/SLURM: each process its node's GPU of its local rank)")
    parser.add_argument("--batch-size", type=int, default=64, help="face crops per frame-encoder batch")
    parser.add_argument("--annotate", action="store_true",
                        help="also write <name>_annotated.mp4 (H.264 with the source's audio)")
    parser.add_argument("--report", action="store_true",
                        help="also write <name>_report.html (the video above its timeline; click an expression "
                             "to see it) and index.html for the batch")
    parser.add_argument("--fps", type=float, default=None,
                        help="frame rate of frame folders (default: the model's, 30), e.g. 200 for SAMM-LV; "
                             "also used for a video whose file states none")
    parser.add_argument("--start", type=float, default=0.0, metavar="SECONDS",
                        help="read from this time on (frame numbers and times stay the whole video's)")
    parser.add_argument("--end", type=float, default=None, metavar="SECONDS", help="read up to this time")
    parser.add_argument("--threshold", type=float, default=None,
                        help="score threshold (default: the one chosen on validation subjects in training)")
    parser.add_argument("--window", type=int, default=None, help="temporal window in frames (default: training's)")
    parser.add_argument("--overlap", type=int, default=None, help="frames shared by neighbouring windows")
    parser.add_argument("--encoder-checkpoint", default=None,
                        help="the frame encoder's weights file, if it moved since training")
    parser.add_argument("--force", action="store_true", help="redo videos whose outputs exist")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_MIN, metavar="MIN",
                        help="under torchrun/SLURM: minutes a process waits for the others to finish "
                             f"(default {DEFAULT_TIMEOUT_MIN:g})")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _wanted(paths: dict, annotate: bool, report: bool) -> List[Path]:
    """The outputs a run with these flags leaves for a video."""
    keys = ["json", "csv", "timeline", "signals"] + (["annotated"] if annotate else [])
    keys += (["report"] + ([] if annotate else ["report_video"])) if report else []
    return [paths[k] for k in keys]


def _up_to_date(wanted: List[Path], inputs: List[Path]) -> bool:
    if not all(p.is_file() for p in wanted):
        return False
    newest_input = max(p.stat().st_mtime for p in inputs if p.exists())
    return min(p.stat().st_mtime for p in wanted) >= newest_input


def _same_part(json_path: Path, part: VideoPart) -> bool:
    """Whether the result at ``json_path`` was read as ``part`` asks (rate of a frame folder,
    ``--start/--end``): another part is another result, never a reason to skip."""
    from .result import VideoResult

    try:
        result = VideoResult.read_json(json_path)
    except UserError:
        return False
    if result.part_s != (None if part.whole else [part.start_s, part.end_s]):
        return False
    return part.fps is None or result.fps == part.fps or not Path(result.video).is_dir()


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


def detect(videos: Sequence[str], out: PathLike, checkpoint: Optional[PathLike] = None, method: str = "fedn",
           device: str = "cpu", batch_size: int = 64, annotate: bool = False, threshold: Optional[float] = None,
           window: Optional[int] = None, overlap: Optional[int] = None, encoder_checkpoint: Optional[str] = None,
           gt: Optional[PathLike] = None, force: bool = False, progress: bool = True, fps: Optional[float] = None,
           start: float = 0.0, end: Optional[float] = None, report: bool = False,
           timeout_min: float = DEFAULT_TIMEOUT_MIN) -> List[Path]:
    """Detect expressions in ``videos`` (expanded by :func:`.inputs.expand_videos`) and write each
    video's outputs into ``out``, then the batch's (:mod:`.batch`); returns the JSON paths of
    the videos this process did. The arguments are the command's flags."""
    from .batch import run_batch

    if batch_size < 1:
        raise UserError(f"--batch-size {batch_size}: must be >= 1")
    part = VideoPart(fps, start, end)
    device = local_device(device, launch_environment())  # one GPU per process under torchrun/SLURM
    out = Path(out)
    truths = _read_truths(gt) if gt else None

    def detect_share(clips: Sequence[Clip], say, progress: bool) -> tuple:
        if not clips:  # a process with no share under torchrun loads no model
            return [], []
        detector, model_file = _detector(method, checkpoint, device, batch_size, threshold, window, overlap,
                                         encoder_checkpoint)
        out.mkdir(parents=True, exist_ok=True)
        failed, written = [], []
        for clip in clips:
            inputs = [clip.path] + ([model_file] if model_file else []) + ([Path(gt)] if gt else [])
            try:
                json_path = _detect_one(detector, clip, out, inputs, part, truths, annotate, report, force,
                                        progress, say)
            except UserError as err:
                print(f"visionattn detect: error: {err}", file=sys.stderr, flush=True)
                failed.append((clip.name, str(err)))
                continue
            written.append(json_path)
        return written, failed

    return run_batch(videos, out, detect_share, report=report, timeout_min=timeout_min, progress=progress,
                     part=part)


def _detect_one(detector, clip: Clip, out: Path, inputs: List[Path], part: VideoPart, truths, annotate: bool,
                report: bool, force: bool, progress: bool, say) -> Path:
    """One video's outputs (skipped when up to date); returns its JSON path."""
    from .annotate import write_annotated
    from .timeline import draw_timeline

    paths = outputs_for(out, clip.name)
    video = str(clip.path)
    if not force and _up_to_date(_wanted(paths, annotate, report), inputs) and _same_part(paths["json"], part):
        say(f"{video}: outputs exist, skipped (--force redoes them)")
        return paths["json"]
    result, boxes, signals = detector.detect(video, progress=progress, part=part)
    result.write_csv(paths["csv"])
    signals.save_npz(paths["signals"])
    clip_truths = _truths_of(truths, video) if truths is not None else None
    draw_timeline(result, paths["timeline"], signals=signals, truths=clip_truths)
    if annotate:
        write_annotated(video, result, boxes, paths["annotated"], progress=progress)
    if report:
        _write_report(video, result, signals, clip_truths, paths, annotate)
    result.write_json(paths["json"])  # last: its presence marks the video as done
    say(summary_line(result))
    return paths["json"]


def _write_report(video: str, result, signals, truths, paths: dict, annotate: bool) -> None:
    from .report import write_report, write_report_video

    playable = paths["annotated"] if annotate else paths["report_video"]
    if not annotate:
        write_report_video(video, result, playable)
    write_report(result, paths["report"], playable, signals=signals, truths=truths)


def _detector(method: str, checkpoint: Optional[PathLike], device: str, batch_size: int, threshold: Optional[float],
              window: Optional[int], overlap: Optional[int], encoder_checkpoint: Optional[str]):
    """The detector for ``method`` and the model file whose changes make outputs stale."""
    if method == "flow":
        if checkpoint is not None:
            raise UserError("--checkpoint: the flow method learns nothing and takes no checkpoint")
        from .detector import FlowDetector

        return FlowDetector(batch_size=batch_size, device=device), None
    if method != "fedn":
        raise UserError(f"--method {method!r}: choose fedn or flow")
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
                  progress=not args.no_progress, fps=args.fps, start=args.start, end=args.end, report=args.report,
                  timeout_min=args.timeout)
