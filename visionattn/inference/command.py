"""``visionattn detect``: facial expressions in anyone's video.

    visionattn detect my_video.mp4 --out results                        # the appearance spotter (training-free)
    visionattn detect my_video.mp4 --out results --method fedn          # the bundled FEDN model
    visionattn detect my_video.mp4 --out results --method flow          # training-free optical-flow spotter
    visionattn detect my_video.mp4 --out results --thresholds micro=0.2,macro=0.3   # re-scored from the cache
    visionattn detect clips/ --out results --report                     # a folder of videos; pages to look at
    visionattn detect SAMM_LV/006_1 --fps 200 --out results             # a 200 fps frame folder
    visionattn detect long.mp4 --start 600 --end 660 --out results      # one minute of a long video
    torchrun --nproc_per_node 4 -m visionattn.cli detect videos.txt --out results  # a batch on 4 processes

VIDEO arguments are video files, folders of numbered frames, folders of videos, globs and text
lists of paths (:mod:`.inputs` says how each is told apart). For each video it writes
``<name>.json`` (intervals in frames and seconds, type, emotion, score; the method or model and
its thresholds, the frame numbering, frames without a face, shot cuts, the inputs that made it;
described by ``detect_result.schema.json``), ``<name>.csv`` (rows ``visionattn evaluate``
reads), ``<name>_frames.csv`` (one row per model step: face, box, motion energy, the method's
score, emotion probabilities), ``<name>_timeline.png`` (the score the method thresholded with
its thresholds, emotion probabilities, intervals, cuts, frames without a face; with ``--gt``,
the ground truth beside them), ``<name>_signals.npz`` (those curves), with ``--annotate``
``<name>_annotated.mp4`` and with ``--report`` ``<name>_report.html`` (:mod:`.report`).
``<name>`` is the file or folder name, with parent folder names before it where two videos of
the batch share one. For the batch: ``detections.csv``, every video's rows pooled (score them
all with one ``visionattn evaluate``), and with ``--report`` ``index.html``.

Frame numbers are those of the annotation files: a video file's frames count from 1, a frame
folder's keep their own numbers; ``--start/--end`` read part of a video and keep its numbers
and times. Outputs made from the same video with the same settings are reused; any change
recomputes them and says why, from the signals kept in ``<out>/.cache`` when only the
thresholds changed (:mod:`.rerun`). A video that cannot be read is reported in one line and
the others still run; the exit status is then non-zero.

Under torchrun or SLURM (:mod:`visionattn.utils.distributed`) the videos are split over the
processes, each done by one, and rank 0 writes the batch's files once every process is done.
See docs/detect.md and docs/detect_report.md.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from ..data.frames import IMAGE_EXTENSIONS, VideoPart
from ..utils import UserError, counted
from ..utils.console import warn
from ..utils.distributed import DEFAULT_TIMEOUT_MIN, launch_environment, local_device
from ..utils.io import PathLike
from .inputs import LIST_EXTENSIONS, VIDEO_EXTENSIONS, Clip, outputs_for

METHODS = ("appearance", "fedn", "flow")
DEFAULT_METHOD = "appearance"  # the best method on `visionattn benchmark-real` (docs/benchmarks_real.md)
TRAINING_FREE = ("appearance", "flow")

# flags a method does not use: method -> {flag: its value when not given}
UNUSED_FLAGS = {method: {"--checkpoint": None, "--window": None, "--overlap": None, "--encoder-checkpoint": None}
                for method in TRAINING_FREE}

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
    parser.epilog = f"{INPUTS_HELP}\n\n{parser.epilog or ''}".rstrip()
    parser.add_argument("videos", nargs="+", metavar="VIDEO",
                        help="video files, frame folders, folders of videos, globs or lists (see below)")
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
    parser.add_argument("--device", default="auto",
                        help="auto (cuda where present, else cpu), cpu or cuda[:N] (cuda under torchrun/SLURM: each "
                             "process its node's GPU of its local rank)")
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
    parser.add_argument("--thresholds", "--threshold", dest="thresholds", type=parse_thresholds, default=None,
                        metavar="T|micro=T,macro=T",
                        help="score thresholds, one value for every type or per type (fedn default: those chosen on "
                             "validation subjects in training; flow: one level of motion energy, default 5)")
    parser.add_argument("--window", type=int, default=None, help="temporal window in frames (default: training's)")
    parser.add_argument("--overlap", type=int, default=None, help="frames shared by neighbouring windows")
    parser.add_argument("--encoder-checkpoint", default=None,
                        help="the frame encoder's weights file, if it moved since training")
    parser.add_argument("--face", default="largest", metavar="largest|center|N",
                        help="with several faces in view, follow the largest, the one nearest the centre, or the "
                             "N-th from the left")
    parser.add_argument("--force", action="store_true",
                        help="redo videos whose outputs are up to date, without the cached signals")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_MIN, metavar="MIN",
                        help="under torchrun/SLURM: minutes a process waits for the others to finish")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def parse_thresholds(text: str) -> Dict[str, float]:
    """``--thresholds``: ``0.3`` (every type: key ``*``) or ``micro=0.2,macro=0.3``."""
    try:
        if "=" not in text:
            return {"*": float(text)}
        pairs = [part.split("=", 1) for part in text.split(",") if part.strip()]
        return {name.strip(): float(value) for name, value in pairs}
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give one number or type=number pairs, "
                                         f"e.g. micro=0.2,macro=0.3") from None


def refuse_unused_flags(method: str, given: Dict[str, object]) -> None:
    """One line naming the first flag ``method`` does not use, among those ``given`` (flag ->
    value)."""
    for flag, unset in UNUSED_FLAGS.get(method, {}).items():
        if given.get(flag, unset) != unset:
            raise UserError(f"{flag}: --method {method} does not use it")


def stale_outputs(paths: dict, inputs: dict, annotate: bool, report: bool) -> Optional[str]:
    """Why the outputs in ``paths`` must be made again for ``inputs`` (:func:`.rerun.stale_reason`),
    or None when they are all there and made from the same inputs."""
    from .rerun import stale_reason
    from .result import VideoResult

    wanted = ["json", "csv", "timeline", "signals", "frames"] + (["annotated"] if annotate else [])
    wanted += (["report"] + ([] if annotate else ["report_video"])) if report else []
    if not paths["json"].is_file():
        return "new"
    missing = [k for k in wanted if not paths[k].is_file()]
    if missing:
        return f"{paths[missing[0]].name} missing"
    try:
        previous = VideoResult.read_json(paths["json"]).inputs
    except UserError:
        return f"{paths['json'].name} unreadable"
    return stale_reason(previous, inputs)


def summary_line(result) -> str:
    if not result.face_found:
        return f"{result.video}: no face found in {result.frame_count} frames; empty result written"
    micro = sum(i.type == "micro" for i in result.intervals)
    no_face = result.unread_frame_count
    cuts, found = len(result.shot_cuts), len(result.intervals)
    notes = "".join([f"; {counted(cuts, 'shot cut')}" if cuts else "",
                     f"; {counted(no_face, 'frame')} without a readable face" if no_face else ""])
    return (f"{result.video}: {counted(found, 'expression')} ({micro} micro, "
            f"{found - micro} macro) in {result.duration_s:.1f} s ({result.method}){notes}")


def detect(videos: Sequence[str], out: PathLike, checkpoint: Optional[PathLike] = None, method: Optional[str] = None,
           device: str = "auto", batch_size: int = 64, annotate: bool = False,
           thresholds: Optional[Dict[str, float]] = None, window: Optional[int] = None,
           overlap: Optional[int] = None, encoder_checkpoint: Optional[str] = None, gt: Optional[PathLike] = None,
           force: bool = False, progress: bool = True, face: str = "largest", fps: Optional[float] = None,
           start: float = 0.0, end: Optional[float] = None, report: bool = False,
           timeout_min: float = DEFAULT_TIMEOUT_MIN) -> List[Path]:
    """Detect expressions in ``videos`` (expanded by :func:`.inputs.expand_videos`) and write each
    video's outputs into ``out``, then the batch's (:mod:`.batch`); returns the JSON paths of
    the videos this process did. The arguments are the command's flags (``thresholds``:
    ``{type: level}``, key ``"*"`` for every type; ``method`` None: fedn with a checkpoint, else
    :data:`DEFAULT_METHOD`)."""
    from .batch import run_batch
    from .detector import resolve_device

    if batch_size < 1:
        raise UserError(f"--batch-size {batch_size}: must be >= 1")
    method = method or ("fedn" if checkpoint is not None else DEFAULT_METHOD)
    refuse_unused_flags(method, {"--checkpoint": checkpoint, "--window": window, "--overlap": overlap,
                                 "--encoder-checkpoint": encoder_checkpoint})
    part = VideoPart(fps, start, end)
    device = local_device(resolve_device(device), launch_environment())  # one GPU per process under torchrun/SLURM
    out = Path(out)
    truths = _read_truths(gt) if gt else None

    def detect_share(clips: Sequence[Clip], say, progress: bool) -> tuple:
        if not clips:  # a process with no share under torchrun loads no model
            return [], []
        detector = _detector(method, checkpoint, device, batch_size, thresholds, window, overlap, encoder_checkpoint,
                             face)
        out.mkdir(parents=True, exist_ok=True)
        failed, written = [], []
        for clip in clips:
            try:
                json_path = _detect_one(detector, clip, out, part, truths, gt, annotate, report, force, progress, say)
            except UserError as err:
                print(f"visionattn detect: error: {err}", file=sys.stderr, flush=True)
                failed.append((clip.name, str(err)))
                continue
            written.append(json_path)
        return written, failed

    return run_batch(videos, out, detect_share, report=report, timeout_min=timeout_min, progress=progress,
                     part=part)


def _detect_one(detector, clip: Clip, out: Path, part: VideoPart, truths, gt: Optional[PathLike], annotate: bool,
                report: bool, force: bool, progress: bool, say) -> Path:
    """Make (or reuse) one video's outputs and say so in one line; returns its JSON path."""
    from .annotate import write_annotated
    from .rerun import ScanCache, video_identity
    from .timeline import draw_timeline
    from ..data.cache import settings_key

    paths = outputs_for(out, clip.name)
    video = str(clip.path)
    if not Path(video).exists():
        raise UserError(f"{video}: no such file or folder")
    part_read = {"fps": part.fps, "start_s": part.start_s, "end_s": part.end_s}
    inputs = {"video": video_identity(video), "settings": {**detector.settings_key(), "part": part_read},
              "gt": video_identity(gt) if gt else None}
    reason = "--force" if force else stale_outputs(paths, inputs, annotate, report)
    if reason is None:
        say(f"{video}: outputs up to date, skipped (--force redoes them)")
        return paths["json"]
    cache = ScanCache(out / ".cache")
    key = settings_key({"video": inputs["video"], **detector.signals_key(), "part": part_read})
    scan = None if force else cache.load(clip.name, video, key, detector.model_fps, part)
    how = "re-scored from the cached signals" if scan is not None else "computed"
    if scan is None:
        scan = detector.scan(video, progress=progress, part=part)
        cache.save(clip.name, key, scan)
    decision = detector.decide(scan)
    result = decision.result
    result.inputs = inputs
    if result.faces_in_view > 1:
        warn(f"{video}: {result.faces_in_view} faces in view; following the "
             f"{_face_words(detector.face)} (--face largest|center|N chooses)")
    result.write_csv(paths["csv"])
    decision.signals.save_npz(paths["signals"])
    decision.signals.write_csv(paths["frames"])
    clip_truths = _truths_of(truths, video) if truths is not None else None
    draw_timeline(result, paths["timeline"], signals=decision.signals, truths=clip_truths)
    if annotate:
        write_annotated(video, result, decision.boxes, paths["annotated"], progress=progress)
    elif paths["annotated"].is_file():  # an earlier run's, drawn with other intervals
        paths["annotated"].unlink()
    if report:
        _write_report(video, result, decision.signals, clip_truths, paths, annotate)
    result.write_json(paths["json"])  # last: its presence marks the video as done
    why = "" if reason == "new" else f"; {how}: {reason}"
    say(summary_line(result) + why)
    return paths["json"]


def _write_report(video: str, result, signals, truths, paths: dict, annotate: bool) -> None:
    from .report import write_report, write_report_video

    playable = paths["annotated"] if annotate else paths["report_video"]
    if not annotate:
        write_report_video(video, result, playable)
    write_report(result, paths["report"], playable, signals=signals, truths=truths)


def _face_words(face: str) -> str:
    return {"largest": "largest", "center": "one nearest the centre"}.get(face, f"face {face} from the left")


def _detector(method: str, checkpoint: Optional[PathLike], device: str, batch_size: int,
              thresholds: Optional[Dict[str, float]], window: Optional[int], overlap: Optional[int],
              encoder_checkpoint: Optional[str], face: str = "largest"):
    """The detector for ``method``."""
    if method in TRAINING_FREE:
        from .detector import AppearanceDetector, FlowDetector

        tool = AppearanceDetector if method == "appearance" else FlowDetector
        return tool(batch_size=batch_size, device=device, thresholds=thresholds, face=face)
    if method != "fedn":
        raise UserError(f"--method {method!r}: choose one of {', '.join(METHODS)}")
    from .bundled import BUNDLED_EMOTIONS, BUNDLED_MODEL, bundled_record
    from .detector import ExpressionDetector
    from .record import read_record

    record = read_record(checkpoint) if checkpoint is not None else bundled_record()
    model_file = Path(checkpoint) if checkpoint is not None else BUNDLED_MODEL
    return ExpressionDetector(record, device=device, batch_size=batch_size, window=window, overlap=overlap,
                              thresholds=thresholds, encoder_checkpoint=encoder_checkpoint, source=str(model_file),
                              face=face, emotions="model" if checkpoint is not None else BUNDLED_EMOTIONS)


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
                  batch_size=args.batch_size, annotate=args.annotate, thresholds=args.thresholds, window=args.window,
                  overlap=args.overlap, encoder_checkpoint=args.encoder_checkpoint, gt=args.gt, force=args.force,
                  progress=not args.no_progress, face=args.face, fps=args.fps, start=args.start, end=args.end,
                  report=args.report, timeout_min=args.timeout)
