"""A synthetic CAS(ME)^2-layout dataset that anyone can generate: ``visionattn synth``.

Each long video animates a real face photograph (``skimage.data.astronaut()``; its face is
at a known place) with expression events that have onset, apex and offset:

- each emotion class has its own pattern of smooth local deformations (Gaussian
  displacement bumps at the brows, eyes, cheeks and mouth, loosely following FACS
  action units): positive = cheek raise + lip-corner pull (AU6+12); negative = brow
  lower + upper-lip raise + lip-corner depress (AU4+10+15); surprise = brow raise +
  upper-lid raise + jaw drop (AU1+2+5+26); others = one-sided dimple + lip press (AU14+24);
- macro events last 0.5-4 s with large amplitude, micro events 8-14 frames (< 0.5 s at
  30 fps) with about a third of it;
- distractors that are not expressions: slow head drift, blinks, lighting changes and
  sensor noise.

Subjects differ in crop, scale, position, mirror image, rotation and colour, so
leave-one-subject-out evaluation means something. Output is deterministic for a seed.

Layout written (the real CAS(ME)^2 layout, read by :func:`visionattn.data.datasets.load_table`)::

    OUT/CAS(ME)^2code_final.xlsx     CASFEcode_final, naming rule1, naming rule2 (no headers)
    OUT/rawpic/s15/15_0101disgust1/img1.jpg ...   (or .../15_0101disgust1.mp4 with --format video)
    OUT/ground_truth.csv             the same intervals as MEGC CSV (subject,video,onset,...)
    OUT/synth.json                   the settings, to refuse mixing datasets in one folder

Each video appears atomically (rendered under a temporary name, then renamed), so an
interrupted run resumes where it stopped.
"""
from __future__ import annotations

import argparse
import json
import math
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import pandas as pd

from ..utils import UserError, atomic_path, atomic_write_json, atomic_write_text
from .annotations import GROUND_TRUTH_COLUMNS, expression_profile, ground_truth_csv

# CAS(ME)^2's subject folders and video codes, so the synthetic set has the real layout.
CASME2_SUBJECTS = ["s15", "s16", "s19", "s20", "s21", "s22", "s23", "s24", "s25", "s26", "s27",
                   "s29", "s30", "s31", "s32", "s33", "s34", "s35", "s36", "s37", "s38", "s40"]
CASME2_VIDEOS = [("0101", "disgust1"), ("0102", "disgust2"), ("0401", "anger1"), ("0402", "anger2"),
                 ("0502", "happy1"), ("0503", "happy2"), ("0505", "happy3"), ("0507", "happy4"),
                 ("0508", "happy5")]

# Landmarks of the face in skimage.data.astronaut() (512x512), from its Haar face box
# (177, 66, 95, 95) and eye detections; the deformations are placed relative to them.
ASTRONAUT_FACE = (177.0, 66.0, 95.0, 95.0)
ASTRONAUT_POINTS = {
    "eye_l": (202, 102), "eye_r": (247, 103), "brow_l": (202, 88), "brow_r": (247, 89),
    "lid_l": (202, 98), "lid_r": (247, 99), "cheek_l": (197, 125), "cheek_r": (253, 125),
    "corner_l": (208, 141), "corner_r": (242, 141), "lip_up": (225, 136), "lip_low": (225, 147),
    "chin": (225, 158),
}

# Action units as displacement bumps: (landmark, direction (dx, dy), sigma in face widths).
ACTIONS: Dict[str, List[Tuple[str, Tuple[float, float], float]]] = {
    "AU1+2": [("brow_l", (0, -1), 0.12), ("brow_r", (0, -1), 0.12)],
    "AU4": [("brow_l", (0.55, 0.85), 0.10), ("brow_r", (-0.55, 0.85), 0.10)],
    "AU5": [("lid_l", (0, -1), 0.06), ("lid_r", (0, -1), 0.06)],
    "AU6": [("cheek_l", (0, -1), 0.10), ("cheek_r", (0, -1), 0.10)],
    "AU10": [("lip_up", (0, -1), 0.08)],
    "AU12": [("corner_l", (-0.7, -0.7), 0.07), ("corner_r", (0.7, -0.7), 0.07)],
    "AU14": [("corner_r", (1, -0.2), 0.06)],
    "AU15": [("corner_l", (0, 1), 0.07), ("corner_r", (0, 1), 0.07)],
    "AU24": [("lip_up", (0, 0.6), 0.06), ("lip_low", (0, -0.6), 0.06)],
    "AU26": [("lip_low", (0, 1), 0.10), ("chin", (0, 1), 0.14)],
    "AU45": [("lid_l", (0, 1), 0.05), ("lid_r", (0, 1), 0.05)],  # blink: a distractor
}
EMOTION_PATTERNS: Dict[str, Dict[str, float]] = {
    "positive": {"AU6": 0.5, "AU12": 1.0},
    "negative": {"AU4": 1.0, "AU10": 0.4, "AU15": 0.6},
    "surprise": {"AU1+2": 1.0, "AU5": 0.5, "AU26": 0.8},
    "others": {"AU14": 1.0, "AU24": 0.6},
}
SELF_REPORTS = {"positive": ["happiness"], "negative": ["disgust", "anger", "sadness"],
                "surprise": ["surprise"], "others": ["others"]}


@dataclass
class SynthConfig:
    subjects: int = 4
    videos_per_subject: int = 2
    seed: int = 0
    seconds: float = 120.0
    fps: float = 30.0
    width: int = 320
    height: int = 240
    format: str = "frames"           # "frames" (JPEG folders, CAS(ME)^2) or "video" (mp4)
    macro_per_minute: float = 3.0
    micro_per_minute: float = 1.5
    macro_amplitude: Tuple[float, float] = (0.07, 0.12)   # peak displacement, face widths
    micro_amplitude: Tuple[float, float] = (0.025, 0.04)
    blink_every: Tuple[float, float] = (2.0, 6.0)         # seconds between blinks
    noise_sigma: float = 2.0


@dataclass
class Event:
    onset: int       # 0-based frame index
    apex: int
    offset: int      # inclusive
    type: str        # micro / macro
    emotion: str
    amplitude: float  # face widths


@dataclass
class Subject:
    """How one synthetic person looks: an affine view of the photo plus a colour change."""

    name: str
    matrix: np.ndarray           # 2x3 affine, astronaut -> frame
    gains: Tuple[float, float, float]
    gamma: float
    face_width: float            # in frame pixels
    points: Dict[str, Tuple[float, float]] = field(default_factory=dict)


def _astronaut_bgr() -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[:, :, ::-1])


def make_subject(index: int, cfg: SynthConfig, rng: np.random.Generator) -> Subject:
    """Random but reproducible appearance: scale, position, mirror, rotation, colour."""
    import cv2

    fx, fy, fw, _ = ASTRONAUT_FACE
    face_w = rng.uniform(0.36, 0.5) * cfg.width
    scale = face_w / fw
    angle = rng.uniform(-6, 6)
    centre_src = (fx + fw / 2, fy + fw / 2 + 8)
    centre_dst = (cfg.width / 2 + rng.uniform(-0.08, 0.08) * cfg.width,
                  cfg.height / 2 + rng.uniform(-0.06, 0.06) * cfg.height)
    m = cv2.getRotationMatrix2D(centre_src, angle, scale)
    m[:, 2] += np.array(centre_dst) - np.array(centre_src)
    if rng.random() < 0.5:  # mirror image about the face centre
        flip = np.array([[-1, 0, 2 * centre_dst[0]], [0, 1, 0]], dtype=np.float64)
        m = flip @ np.vstack([m, [0, 0, 1]])
    points = {}
    for k, (x, y) in ASTRONAUT_POINTS.items():
        px, py = m @ np.array([x, y, 1.0])
        points[k] = (float(px), float(py))
    if m[0, 0] < 0:  # mirrored: the photo's left landmarks are now on the image's right
        swap = {"_l": "_r", "_r": "_l"}
        points = {(k[:-2] + swap[k[-2:]] if k[-2:] in swap else k): v for k, v in points.items()}
    gains = tuple(float(g) for g in rng.uniform(0.75, 1.2, size=3))
    return Subject(name=subject_folder(index), matrix=m, gains=gains, gamma=float(rng.uniform(0.8, 1.25)),
                   face_width=face_w, points=points)


def subject_folder(index: int) -> str:
    """CAS(ME)^2's folder names for the first 22 subjects, then s41, s42, ..."""
    return CASME2_SUBJECTS[index] if index < len(CASME2_SUBJECTS) else f"s{41 + index - len(CASME2_SUBJECTS)}"


def render_base(subject: Subject, cfg: SynthConfig, photo: np.ndarray) -> np.ndarray:
    import cv2

    base = cv2.warpAffine(photo, subject.matrix, (cfg.width, cfg.height), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT)
    lut = np.clip(((np.arange(256) / 255.0) ** subject.gamma) * 255.0, 0, 255)
    out = np.empty_like(base)
    for c in range(3):
        out[:, :, c] = np.clip(lut[base[:, :, c]] * subject.gains[c], 0, 255).astype(np.uint8)
    return out


def action_fields(subject: Subject, cfg: SynthConfig) -> Dict[str, np.ndarray]:
    """Per action unit, a (2, H, W) displacement field for unit amplitude (1 face width)."""
    yy, xx = np.mgrid[0:cfg.height, 0:cfg.width].astype(np.float32)
    fields = {}
    w = subject.face_width
    for name, bumps in ACTIONS.items():
        f = np.zeros((2, cfg.height, cfg.width), np.float32)
        for point, (dx, dy), sigma in bumps:
            px, py = subject.points[point]
            g = np.exp(-((xx - px) ** 2 + (yy - py) ** 2) / (2 * (sigma * w) ** 2))
            norm = math.hypot(dx, dy)
            f[0] += g * (dx / norm) * w
            f[1] += g * (dy / norm) * w
        fields[name] = f
    return fields


def plan_events(n_frames: int, cfg: SynthConfig, rng: np.random.Generator) -> List[Event]:
    """Non-overlapping macro and micro events, at least 1 s apart."""
    minutes = n_frames / cfg.fps / 60.0
    n_macro = max(1, rng.poisson(cfg.macro_per_minute * minutes))
    n_micro = rng.poisson(cfg.micro_per_minute * minutes)
    kinds = ["macro"] * n_macro + ["micro"] * n_micro
    rng.shuffle(kinds)
    gap = int(cfg.fps)
    taken: List[Tuple[int, int]] = []
    events: List[Event] = []
    for kind in kinds:
        length = int(rng.integers(int(0.5 * cfg.fps), int(4 * cfg.fps) + 1)) if kind == "macro" else int(rng.integers(8, 15))
        for _ in range(50):  # rejection sampling for a free slot
            onset = int(rng.integers(gap, n_frames - length - gap))
            offset = onset + length - 1
            if all(offset + gap < s or onset > e + gap for s, e in taken):
                break
        else:
            continue
        apex = onset + int(round((length - 1) * rng.uniform(0.35, 0.6)))
        lo, hi = cfg.macro_amplitude if kind == "macro" else cfg.micro_amplitude
        events.append(Event(onset, apex, offset, kind, str(rng.choice(list(EMOTION_PATTERNS))), float(rng.uniform(lo, hi))))
        taken.append((onset, offset))
    return sorted(events, key=lambda e: e.onset)


def _distractors(n: int, cfg: SynthConfig, rng: np.random.Generator, face_w: float):
    t = np.arange(n) / cfg.fps
    drift = np.zeros((2, n), np.float32)
    for axis in range(2):
        for _ in range(3):
            period = rng.uniform(8, 60)
            drift[axis] += rng.uniform(0.01, 0.03) * face_w * np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi))
    gain = 1 + 0.05 * np.sin(2 * np.pi * t / rng.uniform(20, 80) + rng.uniform(0, 6.3))
    for _ in range(rng.poisson(n / cfg.fps / 40) + 1):  # lights switched / clouds: 1 s ramps
        at, size = rng.uniform(0, t[-1]), rng.uniform(-0.12, 0.12)
        gain += size / (1 + np.exp(-(t - at) * 6))
    blink = np.zeros(n, np.float32)
    s = rng.uniform(*cfg.blink_every)
    while s < t[-1] - 0.5:
        start = int(s * cfg.fps)
        length = int(rng.integers(5, 9))
        blink += expression_profile(n, start, start + length // 2, start + length - 1)
        s += rng.uniform(*cfg.blink_every)
    return drift, gain.astype(np.float32), np.clip(blink, 0, 1) * 0.07


def render_video(subject: Subject, base: np.ndarray, fields: Dict[str, np.ndarray], n_frames: int,
                 events: List[Event], cfg: SynthConfig, rng: np.random.Generator):
    """Yield the frames (BGR uint8) of one video."""
    import cv2

    weights: Dict[str, np.ndarray] = {name: np.zeros(n_frames, np.float32) for name in ACTIONS}
    for ev in events:
        prof = expression_profile(n_frames, ev.onset, ev.apex, ev.offset) * ev.amplitude
        for au, w in EMOTION_PATTERNS[ev.emotion].items():
            weights[au] += prof * w
    drift, gain, blink = _distractors(n_frames, cfg, rng, subject.face_width)
    weights["AU45"] += blink
    noise_bank = [rng.normal(0, cfg.noise_sigma, base.shape).astype(np.float32) for _ in range(8)]
    noise_bank = [(np.clip(nz, 0, 255).astype(np.uint8), np.clip(-nz, 0, 255).astype(np.uint8)) for nz in noise_bank]
    yy, xx = np.mgrid[0:cfg.height, 0:cfg.width].astype(np.float32)
    active = [name for name in ACTIONS if weights[name].any()]
    for i in range(n_frames):
        on = [(name, weights[name][i]) for name in active if weights[name][i] > 1e-4]
        if on:
            disp = sum(fields[name] * w for name, w in on)
            frame = cv2.remap(base, xx - disp[0] - drift[0, i], yy - disp[1] - drift[1, i], cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REFLECT)
        else:
            m = np.float32([[1, 0, drift[0, i]], [0, 1, drift[1, i]]])
            frame = cv2.warpAffine(base, m, (cfg.width, cfg.height), borderMode=cv2.BORDER_REFLECT)
        frame = cv2.convertScaleAbs(frame, alpha=float(gain[i]))
        plus, minus = noise_bank[int(rng.integers(len(noise_bank)))]
        yield cv2.subtract(cv2.add(frame, plus), minus)


def _write_frames(folder: Path, frames, workers: int) -> None:
    import cv2

    folder.mkdir(parents=True)
    params = [cv2.IMWRITE_JPEG_QUALITY, 92]
    with ThreadPoolExecutor(workers) as pool:  # JPEG encoding releases the GIL
        for f in [pool.submit(cv2.imwrite, str(folder / f"img{i + 1}.jpg"), frame, params)
                  for i, frame in enumerate(frames)]:
            if not f.result():
                raise UserError(f"{folder}: could not write frames (disk full or read-only?)")


def _write_video(path: Path, frames, cfg: SynthConfig) -> None:
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), cfg.fps, (cfg.width, cfg.height))
    if not writer.isOpened():
        raise UserError(f"{path}: OpenCV cannot write mp4 here")
    try:
        for frame in frames:
            writer.write(frame)
    finally:
        writer.release()


def _settings(cfg: SynthConfig) -> dict:
    d = asdict(cfg)
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}


def generate(out: Path, cfg: SynthConfig, workers: int = 2, log=print) -> dict:
    """Write the dataset; returns the summary also saved as ``synth.json``."""
    out = Path(out)
    meta_path = out / "synth.json"
    settings = _settings(cfg)
    if meta_path.exists():
        previous = json.loads(meta_path.read_text())
        if previous.get("settings") != settings:
            raise UserError(f"{out}: holds a synthetic dataset made with other settings "
                            f"({meta_path}); choose another --out or delete it")
    elif out.exists() and any(out.iterdir()):
        raise UserError(f"{out}: exists and is not a synthetic dataset folder; choose an empty --out")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(meta_path, {"settings": settings, "complete": False})

    photo = _astronaut_bgr()
    n_frames = int(round(cfg.seconds * cfg.fps))
    rows, truths, t0 = [], [], time.perf_counter()
    for s in range(cfg.subjects):
        subject = make_subject(s, cfg, np.random.default_rng([cfg.seed, s, 0]))
        base = render_base(subject, cfg, photo)
        fields = action_fields(subject, cfg)
        num = int(subject.name[1:])
        for v in range(cfg.videos_per_subject):
            code, name = casme2_video(v)
            rng = np.random.default_rng([cfg.seed, s, v + 1])
            events = plan_events(n_frames, cfg, rng)
            stem = f"{num}_{code}{name}"
            target = out / "rawpic" / subject.name / (stem if cfg.format == "frames" else stem + ".mp4")
            if not target.exists():
                frames = render_video(subject, base, fields, n_frames, events, cfg, rng)
                if cfg.format == "frames":
                    partial = target.with_name(target.name + ".partial")
                    shutil.rmtree(partial, ignore_errors=True)
                    _write_frames(partial, frames, workers)
                    partial.rename(target)
                else:
                    with atomic_path(target, suffix=".mp4") as tmp:
                        _write_video(tmp, frames, cfg)
                log(f"  {target.relative_to(out)}: {n_frames} frames, {len(events)} expressions "
                    f"({time.perf_counter() - t0:.1f}s)")
            for k, ev in enumerate(events, start=1):
                report = SELF_REPORTS[ev.emotion][k % len(SELF_REPORTS[ev.emotion])]
                aus = "+".join(au[2:] for au in EMOTION_PATTERNS[ev.emotion])
                rows.append([s + 1, f"{name}_{k}", ev.onset + 1, ev.apex + 1, ev.offset + 1, aus, ev.emotion,
                             f"{ev.type}-expression", report])
                truths.append([subject.name, code, ev.onset + 1, ev.apex + 1, ev.offset + 1, ev.type, ev.emotion,
                               ev.emotion, aus])
    _write_workbook(out, cfg, rows)
    # From the events themselves (not read back from the workbook), in the layout of `visionattn annotations`.
    atomic_write_text(out / "ground_truth.csv", ground_truth_csv(pd.DataFrame(truths, columns=GROUND_TRUTH_COLUMNS)))
    summary = {"settings": settings, "complete": True, "videos": cfg.subjects * cfg.videos_per_subject,
               "frames_per_video": n_frames, "expressions": len(rows),
               "micro": sum(r[7].startswith("micro") for r in rows)}
    atomic_write_json(meta_path, summary)
    return summary


def casme2_video(v: int) -> Tuple[str, str]:
    """(4-digit code, name) of a subject's ``v``-th video: CAS(ME)^2's, then repeats with new codes."""
    code, name = CASME2_VIDEOS[v % len(CASME2_VIDEOS)]
    if v >= len(CASME2_VIDEOS):
        code = f"{int(code) + 100 * (v // len(CASME2_VIDEOS)):04d}"
        name = f"{name}r{v // len(CASME2_VIDEOS)}"
    return code, name


def _write_workbook(out: Path, cfg: SynthConfig, rows: List[list]) -> None:
    """The real CAS(ME)^2 workbook layout: three header-less sheets. Sheet 2 has one row per
    expression row (subject number, folder, subject index); sheet 3 maps the video code,
    stored as a number (101), to the video name."""
    import openpyxl

    book = openpyxl.Workbook()
    expressions = book.active
    expressions.title = "CASFEcode_final"
    subjects = book.create_sheet("naming rule1")
    videos = book.create_sheet("naming rule2")
    for row in rows:
        expressions.append(row)
        folder = subject_folder(row[0] - 1)
        subjects.append([int(folder[1:]), folder, row[0]])
    for v in range(cfg.videos_per_subject):
        code, name = casme2_video(v)
        videos.append([int(code), name])
    with atomic_path(out / "CAS(ME)^2code_final.xlsx", suffix=".xlsx") as tmp:
        book.save(tmp)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="dataset folder to create (or resume)")
    parser.add_argument("--subjects", type=int, default=4)
    parser.add_argument("--videos-per-subject", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=120.0, help="length of each video")
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--size", default="320x240", help="frame size WxH")
    parser.add_argument("--format", choices=("frames", "video"), default="frames",
                        help="JPEG frame folders (the CAS(ME)^2 layout) or mp4 files")
    parser.add_argument("--workers", type=int, default=2, help="threads encoding frames")


def run(args: argparse.Namespace) -> dict:
    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        raise UserError(f"--size {args.size!r}: expected WIDTHxHEIGHT, e.g. 320x240") from None
    if args.subjects < 1 or args.videos_per_subject < 1 or args.seconds < 10:
        raise UserError("--subjects and --videos-per-subject must be >= 1 and --seconds >= 10")
    cfg = SynthConfig(subjects=args.subjects, videos_per_subject=args.videos_per_subject, seed=args.seed,
                      seconds=args.seconds, fps=args.fps, width=width, height=height, format=args.format)
    print(f"visionattn synth: {cfg.subjects} subjects x {cfg.videos_per_subject} videos of {cfg.seconds:g}s "
          f"at {cfg.fps:g} fps -> {args.out}", flush=True)
    summary = generate(Path(args.out), cfg, workers=args.workers)
    print(f"done: {summary['expressions']} expressions ({summary['micro']} micro) in {summary['videos']} videos")
    return summary
