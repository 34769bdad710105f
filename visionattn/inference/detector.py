"""Expression detection in any video, streamed: frames -> face crops -> features -> FEDN windows.

One pass over the video in constant memory: frames are decoded one at a time and resampled to
the frame rate the model was trained at (so 25, 29.97, 60 fps and variable-rate videos all
look like the training data), faces are tracked and cropped by the same pipeline that made
the training features, features are computed in batches, and the temporal model runs over
overlapping windows (:mod:`.stitching`). Only small per-frame records (time, source frame,
face box: a few bytes each) are kept for the whole video.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple, TypeVar

import numpy as np
import torch

from ..data.frames import DEFAULT_FPS, VideoInfo, index_ranges, iter_timed_frames, probe, resample
from ..features.contract import FeatureContract, Layout
from ..features.extraction import FrameFeatureExtractor
from ..features.front_end import face_spans
from ..features.settings import FeatureSettings
from ..utils import UserError
from ..utils.background import OrderedCalls, prefetched
from ..models.mini_xception import FER_CLASSES
from ..spotting.flow import FlowSpotResult, FlowSpotterSettings, emotion_probabilities, spot_flow_rows
from .record import DetectorRecord
from .result import DetectedInterval, VideoResult
from .signals import TimelineSignals
from ..spotting.stitching import WindowStitcher

D = TypeVar("D")
FLOW_COLUMNS = ("face", "motion_valid", "motion", "appearance_logits")  # what the flow spotter reads


class ExpressionDetector:
    """Runs a trained FEDN on videos.

    Args:
        record: the trained detector (:func:`visionattn.inference.record.read_record`).
        device: ``cpu`` or ``cuda`` (features and the temporal model).
        batch_size: face crops per frame-encoder batch.
        window, overlap: temporal windows in model steps (default: the training window, a
            quarter of it overlapping).
        threshold: one score threshold for every type (default: the per-type thresholds chosen on
            validation subjects in training).
        encoder_checkpoint: the frame encoder's weights, if they moved since training.
        source: where the record came from (a path), for the result's JSON.
    """

    def __init__(self, record: DetectorRecord, device: str = "cpu", batch_size: int = 64,
                 window: Optional[int] = None, overlap: Optional[int] = None, threshold: Optional[float] = None,
                 encoder_checkpoint: Optional[str] = None, source: str = ""):
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise UserError(f"--device {device}: CUDA is not available on this machine")
        self.record, self.device, self.batch_size, self.source = record, device, batch_size, source
        self.window = window or record.window
        self.overlap = overlap if overlap is not None else self.window // 4
        if not 0 <= self.overlap < self.window:
            raise UserError(f"overlap {self.overlap} must be in [0, window={self.window})")
        names = record.type_names
        self.thresholds = record.threshold_tuple() if threshold is None else (float(threshold),) * len(names)
        contract = record.contract
        if encoder_checkpoint is not None:
            contract = replace(contract, settings=replace(contract.settings, checkpoint_path=encoder_checkpoint))
        self.contract, self.settings = contract, contract.settings
        self.extractor = FrameFeatureExtractor(contract.settings, device=device, batch_size=batch_size)
        self.model = record.build_model(device)

    def predict_window(self, features: torch.Tensor) -> dict:
        """FEDN detections (one :meth:`FEDN.predict` dict) for one window of features ``(T, D)``."""
        return self.model.predict(features[None].to(self.device))[0]

    def detect(self, source: str, progress: bool = True) -> Tuple[VideoResult, np.ndarray, TimelineSignals]:
        """Detections in ``source`` (a video file or an image folder), the face box per source
        frame ``(N, 4)`` float32 ``(x, y, w, h)`` (NaN where the frame was not used), and the
        per-step curves behind them (the motion energy the flow spotter would threshold, and the
        appearance network's emotion probabilities, when the features have those streams)."""
        stitcher = WindowStitcher(self.predict_window, self.window, self.overlap, min_score=self.thresholds)
        keep = [c for c in FLOW_COLUMNS if c in self.extractor.layout]
        scan = scan_video(source, self.contract, self.extractor, self.batch_size, stitcher.push, progress, keep=keep)
        found = scan.face_found
        detections = stitcher.finish() if found and scan.steps else []
        if self.settings.front_end == "landmarks":
            detections = within_face_spans(detections, scan.face_spans())
        names_t, names_e = self.model.config.type_names, self.model.config.emotion_names
        found_intervals = [(d.onset, d.offset, names_t[d.type], names_e[d.emotion], d.score) for d in detections]
        # the record's provenance, less the recipe's YAML text (it is in the record itself)
        model = {"name": "FEDN", "source": self.source,
                 **{k: v for k, v in self.record.info.items() if k != "recipe"}}
        result = scan.result(found_intervals, {k: round(v, 4) for k, v in zip(names_t, self.thresholds)},
                             method="fedn", model=model)
        energy = spot_flow_on(scan, self.contract) if set(keep) == set(FLOW_COLUMNS) else None
        return result, scan.source_boxes(), scan.signals(energy)


class FlowDetector:
    """The training-free spotter (:mod:`.flow_spotter`) on the default real-face features: the
    landmark front end, the motion stream, and the appearance network for the emotions. Videos
    are resampled to ``model_fps`` (the spotter's settings are in seconds, so any rate works)."""

    def __init__(self, settings: Optional[FlowSpotterSettings] = None, model_fps: float = DEFAULT_FPS,
                 batch_size: int = 64, device: str = "cpu"):
        self.contract = FeatureContract(FeatureSettings(front_end="landmarks", streams=("motion", "appearance")),
                                        model_fps=model_fps)
        self.spotter = flow_settings(self.contract, settings)
        self.spotter.validate()
        self.batch_size = batch_size
        self.extractor = FrameFeatureExtractor(self.contract.settings, device=device, batch_size=batch_size)

    def detect(self, source: str, progress: bool = True) -> Tuple[VideoResult, np.ndarray, TimelineSignals]:
        """As :meth:`ExpressionDetector.detect`."""
        scan = scan_video(source, self.contract, self.extractor, self.batch_size, lambda rows: None, progress,
                          keep=FLOW_COLUMNS)
        found = spot_flow_on(scan, self.contract, self.spotter)
        intervals = [i.as_tuple() for i in found.intervals] if scan.face_found else []
        model = {"name": "optical-flow spotter (training-free)", "settings": found.settings,
                 "features": {"front_end": self.contract.settings.front_end,
                              "motion_interval_s": self.contract.motion_interval_s}}
        result = scan.result(intervals, {"motion energy (noise units)": round(found.threshold, 4)}, method="flow",
                             model=model)
        return result, scan.source_boxes(), scan.signals(found)


def flow_settings(contract: FeatureContract, settings: Optional[FlowSpotterSettings] = None) -> FlowSpotterSettings:
    """The flow spotter's ``settings`` (default: its defaults) on the features of ``contract``:
    its motion interval is the one the motion rows were made with."""
    return replace(settings or FlowSpotterSettings(), interval_s=contract.motion_interval_s)


def spot_flow_features(rows: np.ndarray, layout: Layout, cuts: Sequence[int], contract: FeatureContract,
                       settings: Optional[FlowSpotterSettings] = None) -> FlowSpotResult:
    """The flow spotter on feature rows of ``contract`` (``layout``: where the face, motion and
    appearance columns are in ``rows``; ``cuts``: the rows right after a shot cut)."""
    return spot_flow_rows(rows, layout, cuts, contract.model_fps, flow_settings(contract, settings))


def spot_flow_on(scan: "VideoScan", contract: FeatureContract,
                 settings: Optional[FlowSpotterSettings] = None) -> FlowSpotResult:
    """The flow spotter on a scan's kept face, motion and appearance columns."""
    rows, layout = scan.rows()
    return spot_flow_features(rows, layout, scan.cut_steps, contract, settings)


def within_face_spans(detections: Sequence[D], spans: Sequence[Tuple[int, int]]) -> List[D]:
    """Detections (dataclasses with inclusive ``onset``/``offset`` steps) clipped to the face span
    (steps with a tracked face, no shot cut inside) they overlap most; one left with less than
    half its length, or outside every span, is dropped: no expression is reported where no face
    was tracked, and none across a cut."""
    kept = []
    for d in detections:
        best = max(spans, key=lambda sp: min(d.offset, sp[1]) - max(d.onset, sp[0]), default=None)
        if best is None:
            continue
        onset, offset = max(d.onset, best[0]), min(d.offset, best[1])
        if offset >= onset and offset - onset + 1 >= 0.5 * (d.offset - d.onset + 1):
            kept.append(replace(d, onset=onset, offset=offset))
    return kept


@dataclass
class VideoScan:
    """What one pass over a video saw, per model step: its source frame and time, the face box,
    whether a face was tracked, shot cuts, and the per-step columns ``keep`` asked for."""

    info: VideoInfo
    model_fps: float
    decoded: int = 0
    steps_source: List[int] = field(default_factory=list)
    steps_time: List[float] = field(default_factory=list)
    boxes: List[Optional[Tuple[float, float, float, float]]] = field(default_factory=list)
    present: List[bool] = field(default_factory=list)
    cut_steps: List[int] = field(default_factory=list)
    face_found: bool = False
    columns: Dict[str, List[np.ndarray]] = field(default_factory=dict)

    @property
    def steps(self) -> int:
        return len(self.steps_source)

    def column(self, name: str) -> np.ndarray:
        return np.concatenate(self.columns[name]) if self.columns.get(name) else np.zeros((0,), np.float32)

    def face_spans(self) -> List[Tuple[int, int]]:
        """Inclusive step ranges with a face on every step and no shot cut inside."""
        return face_spans(self.present, self.cut_steps)

    def rows(self) -> Tuple[np.ndarray, Dict[str, Tuple[int, int]]]:
        """The kept columns side by side ``(T, D')`` and their layout (name -> column range)."""
        layout, start, parts = {}, 0, []
        for name in self.columns:
            part = self.column(name).reshape(self.steps, -1)
            layout[name] = (start, start + part.shape[1])
            start += part.shape[1]
            parts.append(part)
        return (np.concatenate(parts, 1) if parts else np.zeros((self.steps, 0), np.float32)), layout

    def emotion_probs(self) -> Optional[np.ndarray]:
        """``(T, 7)`` appearance probabilities (FER classes), NaN on steps without a face."""
        if not self.columns.get("appearance_logits"):
            return None
        return emotion_probabilities(self.column("appearance_logits").reshape(self.steps, -1), self.present)

    def signals(self, flow: Optional[FlowSpotResult] = None) -> TimelineSignals:
        """The curves for the timeline: the motion energy (and the flow spotter's level), the
        appearance probabilities."""
        energy = None if flow is None else np.where(flow.usable, flow.energy, np.nan)
        return TimelineSignals(
            times_s=np.asarray(self.steps_time, float), score=energy, score_label="motion energy (noise units)",
            score_threshold=None if flow is None else float(flow.threshold), emotion_probs=self.emotion_probs(),
            emotion_names=FER_CLASSES, frames=np.array([self.number(i) for i in self.steps_source], np.int64))

    def number(self, index: int) -> int:
        """The annotation-style number of a source frame index: a video file's frames count from
        1 (as the datasets' workbooks count them), a frame folder's keep their own numbers."""
        return index + 1 if self.info.frame_numbers is None else index

    @property
    def frame_numbering(self) -> str:
        return ("1-based frame numbers of the video file" if self.info.frame_numbers is None
                else "the frame folder's own image numbers")

    def result(self, intervals: Sequence[Tuple[int, int, str, str, float]], threshold: Dict[str, float],
               method: str = "fedn", model: Optional[dict] = None) -> VideoResult:
        """The video's result for ``intervals`` in steps ``(onset, offset, type, emotion, score)``."""
        detected = [DetectedInterval(self.number(self.steps_source[on]), self.number(self.steps_source[off]),
                                     round(self.steps_time[on], 4), round(self.steps_time[off], 4), kind, emotion,
                                     round(float(score), 4))
                    for on, off, kind, emotion, score in intervals]
        missing = sorted({self.number(self.steps_source[s]) for s, here in enumerate(self.present) if not here})
        duration = (self.steps_time[-1] + 1.0 / self.model_fps) if self.steps_time else 0.0
        return VideoResult(
            video=str(self.info.path), fps=self.info.fps, frame_count=self.decoded, duration_s=round(duration, 4),
            width=self.info.width, height=self.info.height, face_found=self.face_found, intervals=detected,
            frames_without_face=index_ranges(missing), threshold=threshold, model_fps=self.model_fps,
            method=method, model=model or {}, frame_numbering=self.frame_numbering,
            first_frame=self.number(self.info.frame_numbers[0] if self.info.frame_numbers else 0),
            shot_cuts=[self.number(self.steps_source[s]) for s in self.cut_steps],
        )

    def source_boxes(self) -> np.ndarray:
        """The face box of every decoded source frame ``(N, 4)`` float32 (NaN without one)."""
        boxes = np.full((max(self.decoded, 1), 4), np.nan, dtype=np.float32)
        for index, box in zip(self.steps_source, self.boxes):
            if box is not None:
                boxes[_position(self.info, index)] = box
        # frames the resampling skipped (a source faster than the model) show the box before them
        seen = np.zeros(len(boxes), bool)
        for index in self.steps_source:
            seen[_position(self.info, index)] = True
        known = np.where(seen, np.arange(len(boxes)), 0)
        return boxes[np.maximum.accumulate(known)]


def scan_video(source: str, contract: FeatureContract, extractor: FrameFeatureExtractor,
               batch_size: int, consume: Callable[[np.ndarray], None], progress: bool = True,
               keep: Sequence[str] = ()) -> VideoScan:
    """One streaming pass: frames resampled to the contract's model rate, its face front end,
    feature rows in batches of ``batch_size`` handed to ``consume``; the columns named in
    ``keep`` (from ``extractor.layout``) are kept for the whole video."""
    model_fps = contract.model_fps
    # A frame folder states no rate of its own: it is taken as already at the model rate.
    info = probe(source, fps=model_fps)
    scan = VideoScan(info, model_fps, columns={name: [] for name in keep})
    pipeline = contract.face_pipeline()
    from tqdm import tqdm

    bar = tqdm(total=info.frame_count, unit="frame", desc=Path(source).name, disable=not progress,
               dynamic_ncols=True)

    def timed() -> Iterator[Tuple[int, float, np.ndarray]]:
        for position, (index, seconds, image) in enumerate(iter_timed_frames(source, fps=model_fps)):
            scan.decoded = position + 1
            bar.update(1)
            yield index, seconds, image

    def stepped() -> Iterator[Tuple[int, np.ndarray]]:
        for step, index, seconds, image in resample(timed(), model_fps):
            scan.steps_source.append(index)
            scan.steps_time.append(seconds)
            yield step, image

    def flush(items: list) -> None:
        rows = extractor(items)
        for name in keep:
            lo, hi = extractor.layout[name]
            scan.columns[name].append(rows[:, lo:hi].astype(np.float32))
        consume(rows)

    pending: list = []
    try:
        # Decoding and the networks run beside the face front end (see utils.background).
        with OrderedCalls() as network:
            for item in pipeline.process(prefetched(stepped())):
                pending.append(item)
                scan.boxes.append(item.box)
                # the Haar pipeline carries a box over misses; only its detections count as a face
                scan.present.append(bool(getattr(item, "present", getattr(item, "detected", True))))
                if getattr(item, "cut", False):
                    scan.cut_steps.append(item.index)
                if len(pending) >= batch_size:
                    network.submit(flush, pending)
                    pending = []
            if pending:
                network.submit(flush, pending)
    finally:
        bar.close()
    scan.face_found = bool(pipeline.report.face_found)
    return scan


def _position(info: VideoInfo, index: int) -> int:
    """Row of a source frame index in per-frame arrays (image folders number frames their own way)."""
    if info.frame_numbers is None:
        return index
    return int(np.searchsorted(info.frame_numbers, index))
