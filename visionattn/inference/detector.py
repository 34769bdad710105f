"""Expression detection in any video, streamed: frames -> face crops -> features -> FEDN windows.

One pass over the video in constant memory: frames are decoded one at a time and resampled to
the frame rate the model was trained at (so 25, 29.97, 60 fps and variable-rate videos all
look like the training data), faces are tracked and cropped by the same pipeline that made
the training features, features are computed in batches, and the temporal model runs over
overlapping windows (:mod:`.stitching`). Only small per-frame records (time, source frame,
face box: a few bytes each) are kept for the whole video.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, TypeVar, Union

import numpy as np
import torch

from ..data.annotations import EXPRESSION_TYPES
from ..data.cache import settings_key
from ..data.frames import DEFAULT_FPS, VideoInfo, VideoPart, index_ranges, probe
from ..data.stream import face_batches, model_rate_frames
from ..features.contract import FeatureContract, Layout
from ..features.extraction import FrameFeatureExtractor
from ..features.front_end import face_spans
from ..features.settings import FeatureSettings
from ..utils import UserError
from ..models.mini_xception import FER_CLASSES
from ..spotting.appearance import AppearanceSpotResult, AppearanceSpotterSettings, apex_emotions, spot_appearance_rows
from ..spotting.flow import FlowSpotResult, FlowSpotterSettings, spot_flow_rows
from ..spotting.streams import emotion_probabilities, feature_streams
from .bundled import weights_digest
from .record import DetectorRecord
from .result import DetectedInterval, VideoResult
from .signals import TimelineSignals
from ..spotting.stitching import StepDetection, WindowStitcher, select
from ..utils.console import progress_wanted

D = TypeVar("D")
FLOW_COLUMNS = ("face", "motion_valid", "motion", "appearance_logits")  # what the flow spotter reads


@dataclass
class Decision:
    """What a detector decided on one video's signals: the result, the face box per source frame
    ``(N, 4)`` float32 (NaN where none), the per-step curves, and the scan they came from."""

    result: VideoResult
    boxes: np.ndarray
    signals: TimelineSignals
    scan: "VideoScan"


class Detector:
    """Detection in two steps: :meth:`scan` (the expensive pass: tracking, features, for FEDN the
    temporal model and every scored candidate) and :meth:`decide` (thresholds and the spotter, in
    milliseconds), so that a scan kept on disk can be decided again with other settings.

    :meth:`signals_key` is what shapes a scan (the cache key: two methods whose scans are the same
    share it), :meth:`settings_key` what shapes the result (the method and thresholds besides)."""

    method = ""

    def scan(self, source: str, progress: bool = True, part: VideoPart = VideoPart()) -> "VideoScan":
        raise NotImplementedError

    def decide(self, scan: "VideoScan") -> Decision:
        raise NotImplementedError

    def signals_key(self) -> dict:
        raise NotImplementedError

    def settings_key(self) -> dict:
        """Everything besides the video that shapes the result: :meth:`signals_key`, the method and
        the thresholds."""
        return {"method": self.method, **self.signals_key(), "thresholds": self.thresholds}

    def detect(self, source: str, progress: bool = True, part: VideoPart = VideoPart()
               ) -> Tuple[VideoResult, np.ndarray, TimelineSignals]:
        """:meth:`scan` then :meth:`decide`: the result, the face box per source frame ``(N, 4)``
        float32 ``(x, y, w, h)`` (NaN where the frame was not used), and the per-step curves."""
        decision = self.decide(self.scan(source, progress, part))
        return decision.result, decision.boxes, decision.signals


class ExpressionDetector(Detector):
    """Runs a trained FEDN on videos (:class:`Detector`'s two steps: a scan keeps every scored
    candidate, so it can be decided again with other ``thresholds``).

    Args:
        record: the trained detector (:func:`visionattn.inference.record.read_record`).
        device: ``cpu`` or ``cuda`` (features and the temporal model).
        batch_size: face crops per frame-encoder batch.
        window, overlap: temporal windows in model steps (default: the training window, a
            quarter of it overlapping).
        thresholds: score threshold per type name, those given replacing the record's (the
            per-type thresholds chosen on validation subjects in training).
        encoder_checkpoint: the frame encoder's weights, if they moved since training.
        source: where the record came from (a path), for the result's JSON.
        face: which face to follow when several are in view (``largest``, ``center`` or a
            1-based position from the left).
        emotions: ``model``: each detection's emotion from FEDN's emotion head; ``appearance``:
            the one the appearance network reads at its apex against the face's own neutral
            (:func:`~visionattn.spotting.appearance.apex_emotions`), for a model whose emotion head
            learned synthetic labels (the bundled one). Needs the appearance stream.
    """

    method = "fedn"
    EMOTION_SOURCES = ("model", "appearance")
    score_name = "FEDN interval score"

    def __init__(self, record: DetectorRecord, device: str = "cpu", batch_size: int = 64,
                 window: Optional[int] = None, overlap: Optional[int] = None,
                 thresholds: Optional[Mapping[str, float]] = None, encoder_checkpoint: Optional[str] = None,
                 source: str = "", face: str = "largest", emotions: str = "model"):
        device = resolve_device(device)
        if emotions not in self.EMOTION_SOURCES:
            raise UserError(f"emotions {emotions!r}: choose one of {', '.join(self.EMOTION_SOURCES)}")
        self.emotions = emotions
        self.record, self.device, self.batch_size, self.source, self.face = record, device, batch_size, source, face
        self.window = window or record.window
        self.overlap = overlap if overlap is not None else self.window // 4
        if not 0 <= self.overlap < self.window:
            raise UserError(f"overlap {self.overlap} must be in [0, window={self.window})")
        self.thresholds = per_type_thresholds(record.thresholds, thresholds)
        contract = record.contract
        if encoder_checkpoint is not None:
            contract = replace(contract, settings=replace(contract.settings, checkpoint_path=encoder_checkpoint))
        self.contract, self.settings, self.model_fps = contract, contract.settings, contract.model_fps
        self.extractor = FrameFeatureExtractor(contract.settings, device=device, batch_size=batch_size)
        if emotions == "appearance" and "appearance_logits" not in self.extractor.layout:
            raise UserError(f"{source or 'the model'}: emotions from the appearance network need the appearance "
                            f"stream; the model's features are {list(contract.settings.streams)}")
        self.model = record.build_model(device)

    def signals_key(self) -> dict:
        """Everything besides the video that shapes :meth:`scan`'s output (a cache key): digests
        of the model and of the feature settings, the rate, face, windows."""
        model = {"config": asdict(self.record.model), "weights_sha256": weights_digest(self.record.state_dict)}
        return {"model": settings_key(model), "features": settings_key(self.settings.key_settings()),
                "fps": self.model_fps, "face": self.face, "window": self.window, "overlap": self.overlap}

    def settings_key(self) -> dict:
        """As :meth:`Detector.settings_key`, with where the emotions come from."""
        return {**super().settings_key(), "emotions": self.emotions}

    def predict_window(self, features: torch.Tensor) -> dict:
        """FEDN detections (one :meth:`FEDN.predict` dict) for one window of features ``(T, D)``."""
        return self.model.predict(features[None].to(self.device))[0]

    def scan(self, source: str, progress: bool = True, part: VideoPart = VideoPart()) -> "VideoScan":
        """The expensive pass over ``source`` (a video file or an image folder): the scan, with
        every scored candidate in its ``candidates``, before any threshold. ``part``: a frame
        folder's rate and the stretch of the source to read (default: all)."""
        stitcher = WindowStitcher(self.predict_window, self.window, self.overlap)
        keep = [c for c in FLOW_COLUMNS if c in self.extractor.layout]
        scan = scan_video(source, self.contract, self.extractor, self.batch_size, stitcher.push, progress,
                          keep=keep, face=self.face, part=part)
        if scan.face_found and scan.steps:
            stitcher.finish()
            scan.candidates = stitcher.candidates
        return scan

    def decide(self, scan: "VideoScan") -> Decision:
        """The detections of a :meth:`scan` at this detector's thresholds, and the curves behind
        them: each type's score (the best candidate over each step, what the thresholds cut),
        the motion energy and the appearance network's emotion probabilities, when the features
        have those streams."""
        names_t, names_e = self.model.config.type_names, self.model.config.emotion_names
        detections = select(scan.candidates, [self.thresholds[t] for t in names_t])
        if self.settings.front_end == "landmarks":
            detections = within_face_spans(detections, scan.face_spans())
        emotions = [names_e[d.emotion] for d in detections]
        if self.emotions == "appearance" and detections:
            streams = feature_streams(*scan.rows(), scan.cut_steps)
            emotions = apex_emotions(streams.emotion_probs, streams.spans, [(d.onset, d.offset) for d in detections],
                                     scan.model_fps)
        found_intervals = [(d.onset, d.offset, names_t[d.type], e, d.score) for d, e in zip(detections, emotions)]
        # the record's provenance, less the recipe's YAML text (it is in the record itself)
        model = {"name": "FEDN", "source": self.source, "emotions": self.emotions,
                 **{k: v for k, v in self.record.info.items() if k != "recipe"}}
        result = scan.result(found_intervals, {k: round(v, 4) for k, v in self.thresholds.items()},
                             method=self.method, model=model, score_name=self.score_name)
        flow = spot_flow_on(scan, self.contract) if set(scan.columns) == set(FLOW_COLUMNS) else None
        scores = best_scores(scan.candidates, scan.steps, len(names_t))
        motion = None if flow is None else np.where(flow.usable, flow.energy, np.nan)
        signals = scan.signals(scores, names_t, self.thresholds, self.score_name, motion)
        return Decision(result, scan.source_boxes(), signals, scan)


class FlowDetector(Detector):
    """The training-free flow spotter (:mod:`visionattn.spotting.flow`) on the default real-face
    features: the landmark front end, the motion stream, and the appearance network for the
    emotions. Videos are resampled to ``model_fps`` (the spotter's settings are in seconds, so any
    rate works). Its one threshold is the spotter's setting ``threshold_field`` (flow: the apex
    level of the motion energy, ``peak_k``, in noise units), the same for both types (the type
    follows from the duration); ``thresholds`` may give it per type only with one value.
    Subclasses swap the spotter (:meth:`spot`)."""

    method = "flow"
    name = "optical-flow spotter (training-free)"
    score_name = "motion energy (noise units)"  # what the spotter thresholds, for the JSON and the timeline
    default_settings = FlowSpotterSettings
    threshold_field = "peak_k"

    def __init__(self, settings=None, model_fps: float = DEFAULT_FPS, batch_size: int = 64, device: str = "cpu",
                 thresholds: Optional[Mapping[str, float]] = None, face: str = "largest"):
        self.contract = FeatureContract(FeatureSettings(front_end="landmarks", streams=("motion", "appearance")),
                                        model_fps=model_fps)
        self.spotter = self.settings_on(self.contract, settings)
        if thresholds:
            current = float(getattr(self.spotter, self.threshold_field))
            levels = set(per_type_thresholds({t: current for t in EXPRESSION_TYPES}, thresholds).values())
            if len(levels) > 1:
                raise UserError(f"--thresholds {format_thresholds(thresholds)}: the {self.method} method has one "
                                f"threshold, on the {self.score_name}, for every type; give one value")
            self.spotter = replace(self.spotter, **{self.threshold_field: float(levels.pop())})
        self.spotter.validate()
        self.model_fps, self.batch_size, self.face = model_fps, batch_size, face
        self.features = self.contract.settings
        self.extractor = FrameFeatureExtractor(self.features, device=resolve_device(device), batch_size=batch_size)

    @staticmethod
    def settings_on(contract: FeatureContract, settings: Optional[FlowSpotterSettings]) -> FlowSpotterSettings:
        """The spotter's ``settings`` (default: its defaults) on the features of ``contract``."""
        return flow_settings(contract, settings)

    @property
    def thresholds(self) -> Dict[str, float]:
        return {t: float(getattr(self.spotter, self.threshold_field)) for t in EXPRESSION_TYPES}

    def signals_key(self) -> dict:
        """The feature settings, rate and face: the flow and appearance spotters run on the same
        scan (only :meth:`decide` differs), so switching between them reuses it."""
        return {"features": settings_key(self.features.key_settings()), "fps": self.model_fps, "face": self.face}

    def settings_key(self) -> dict:
        """As :meth:`Detector.settings_key`, with a digest of the spotter's other settings."""
        others = {k: v for k, v in asdict(self.spotter).items() if k != self.threshold_field}
        return {**super().settings_key(), "spotter": settings_key(others)}

    def scan(self, source: str, progress: bool = True, part: VideoPart = VideoPart()) -> "VideoScan":
        """As :meth:`ExpressionDetector.scan` (the spotter itself is cheap: it runs in :meth:`decide`)."""
        return scan_video(source, self.contract, self.extractor, self.batch_size, lambda rows: None,
                          progress, keep=FLOW_COLUMNS, face=self.face, part=part)

    def spot(self, scan: "VideoScan") -> FlowSpotResult:
        """The spotter on a scan's rows."""
        return spot_flow_on(scan, self.contract, self.spotter)

    @staticmethod
    def motion_of(found) -> np.ndarray:
        """``(T,)`` the face's motion in noise units (NaN where not usable), for the per-frame table."""
        return np.where(found.usable, found.energy, np.nan)

    def decide(self, scan: "VideoScan") -> Decision:
        """As :meth:`ExpressionDetector.decide`."""
        found = self.spot(scan)
        intervals = [i.as_tuple() for i in found.intervals] if scan.face_found else []
        model = {"name": self.name, "settings": found.settings,
                 "features": {"front_end": self.features.front_end,
                              "motion_interval_s": self.contract.motion_interval_s}}
        result = scan.result(intervals, {k: round(v, 4) for k, v in self.thresholds.items()}, method=self.method,
                             model=model, score_name=self.score_name)
        score = np.where(found.usable, found.energy, np.nan)
        signals = scan.signals(score, (), float(found.threshold), self.score_name, self.motion_of(found))
        return Decision(result, scan.source_boxes(), signals, scan)


class AppearanceDetector(FlowDetector):
    """The training-free appearance spotter (:mod:`visionattn.spotting.appearance`) on the same
    features; its one threshold is ``peak_gain``, the emotion gain over the face's neutral."""

    method = "appearance"
    name = "appearance spotter (training-free)"
    score_name = "emotion gain over the neutral face"
    default_settings = AppearanceSpotterSettings
    threshold_field = "peak_gain"

    @staticmethod
    def settings_on(contract: FeatureContract, settings: Optional[AppearanceSpotterSettings]
                    ) -> AppearanceSpotterSettings:
        return settings or AppearanceSpotterSettings()

    def spot(self, scan: "VideoScan") -> AppearanceSpotResult:
        rows, layout = scan.rows()
        return spot_appearance_rows(rows, layout, scan.cut_steps, scan.model_fps, self.spotter)

    @staticmethod
    def motion_of(found) -> np.ndarray:
        return np.where(found.usable, found.motion, np.nan)


def resolve_device(device: str) -> str:
    """``auto``: ``cuda`` where CUDA is available, else ``cpu``; ``cuda[:N]`` is refused in one
    line where it is not."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {device}: CUDA is not available on this machine")
    return device


def per_type_thresholds(defaults: Mapping[str, float], given: Optional[Mapping[str, float]]) -> Dict[str, float]:
    """``defaults`` (one threshold per type name) with those ``given`` replacing them; a key
    ``"*"`` in ``given`` stands for every type."""
    given = dict(given or {})
    every = given.pop("*", None)
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise UserError(f"--thresholds: unknown type {unknown[0]!r}; the types are {', '.join(defaults)}")
    return {t: float(given.get(t, every if every is not None else v)) for t, v in defaults.items()}


def format_thresholds(thresholds: Mapping[str, float]) -> str:
    """``micro=0.2,macro=0.3``: the form ``--thresholds`` takes."""
    return ",".join(f"{k}={v:g}" for k, v in thresholds.items())


def best_scores(candidates: Sequence[StepDetection], steps: int, types: int) -> np.ndarray:
    """``(steps, types)`` the highest score of a candidate of each type covering each step (0
    where none does): a step is inside a detection of a type only where its curve reaches that
    type's threshold."""
    scores = np.zeros((steps, types), np.float64)
    for d in candidates:
        block = scores[d.onset:d.offset + 1, d.type]
        np.maximum(block, d.score, out=block)
    return scores


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
    part: VideoPart = VideoPart()
    decoded: int = 0
    first_index: int = 0  # source index of the first frame read (not 0 for a part)
    steps_source: List[int] = field(default_factory=list)
    steps_time: List[float] = field(default_factory=list)
    boxes: List[Optional[Tuple[float, float, float, float]]] = field(default_factory=list)
    present: List[bool] = field(default_factory=list)
    cut_steps: List[int] = field(default_factory=list)
    face_found: bool = False
    columns: Dict[str, List[np.ndarray]] = field(default_factory=dict)
    candidates: List[StepDetection] = field(default_factory=list)  # FEDN's, before any threshold
    faces_in_view: int = 0  # the most faces the tracker's searches saw in one frame

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

    def signals(self, scores: np.ndarray, score_names: Sequence[str], thresholds: Union[float, Mapping[str, float]],
                score_label: str, motion: Optional[np.ndarray] = None) -> TimelineSignals:
        """The curves for the timeline and the per-frame table: ``scores`` ``(T,)`` or ``(T, K)``
        (what the method thresholds, one column per name in ``score_names``) and its
        ``thresholds`` (one level, or one per name), the face's motion energy ``(T,)`` in noise
        units (NaN where unusable), the appearance probabilities, face presence and boxes."""
        boxes = np.array([b if b is not None else (np.nan,) * 4 for b in self.boxes], np.float64).reshape(-1, 4)
        return TimelineSignals(
            times_s=np.asarray(self.steps_time, float), score=scores, score_names=tuple(score_names),
            score_label=score_label, score_threshold=thresholds if isinstance(thresholds, float) else dict(thresholds),
            emotion_probs=self.emotion_probs(),
            emotion_names=FER_CLASSES, frames=np.array([self.number(i) for i in self.steps_source], np.int64),
            motion_energy=motion, face_present=np.asarray(self.present, bool), face_boxes=boxes)

    def to_arrays(self) -> Dict[str, np.ndarray]:
        """Plain arrays for a cache (:meth:`from_arrays` reads them back, with the probe's info)."""
        arrays = {"decoded": np.array(self.decoded), "first_index": np.array(self.first_index), "steps_source": np.asarray(self.steps_source, np.int64),
                  "steps_time": np.asarray(self.steps_time, np.float64),
                  "boxes": np.array([b if b is not None else (np.nan,) * 4 for b in self.boxes],
                                    np.float64).reshape(-1, 4),
                  "present": np.asarray(self.present, bool), "cut_steps": np.asarray(self.cut_steps, np.int64),
                  "face_found": np.array(self.face_found), "faces_in_view": np.array(self.faces_in_view),
                  "candidates": np.array([(d.onset, d.offset, d.type, d.emotion, d.score, d.window)
                                          for d in self.candidates], np.float64).reshape(-1, 6),
                  "column_names": np.array(list(self.columns), dtype=str)}
        for name in self.columns:
            arrays[f"column_{name}"] = self.column(name)
        return arrays

    @classmethod
    def from_arrays(cls, info: VideoInfo, model_fps: float, arrays: Mapping[str, np.ndarray],
                    part: VideoPart = VideoPart()) -> "VideoScan":
        """Inverse of :meth:`to_arrays`; ``part``: the one the scan read (it is in the cache key)."""
        boxes = [None if np.isnan(b).any() else tuple(float(v) for v in b) for b in arrays["boxes"]]
        candidates = [StepDetection(int(on), int(off), int(t), int(e), float(sc), int(w))
                      for on, off, t, e, sc, w in arrays["candidates"]]
        return cls(info, model_fps, part=part, decoded=int(arrays["decoded"]), first_index=int(arrays["first_index"]),
                   steps_source=arrays["steps_source"].tolist(),
                   steps_time=arrays["steps_time"].tolist(), boxes=boxes, present=arrays["present"].tolist(),
                   cut_steps=arrays["cut_steps"].tolist(), face_found=bool(arrays["face_found"]),
                   columns={str(n): [arrays[f"column_{n}"]] for n in arrays["column_names"]},
                   candidates=candidates, faces_in_view=int(arrays["faces_in_view"]))

    def number(self, index: int) -> int:
        """The annotation-style number of a source frame index: a video file's frames count from
        1 (as the datasets' workbooks count them), a frame folder's keep their own numbers."""
        return index + 1 if self.info.frame_numbers is None else index

    @property
    def frame_numbering(self) -> str:
        return ("1-based frame numbers of the video file" if self.info.frame_numbers is None
                else "the frame folder's own image numbers")

    def result(self, intervals: Sequence[Tuple[int, int, str, str, float]], thresholds: Dict[str, float],
               method: str = "fedn", model: Optional[dict] = None, score_name: str = "") -> VideoResult:
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
            frames_without_face=index_ranges(missing), thresholds=thresholds, score_name=score_name,
            faces_in_view=self.faces_in_view, model_fps=self.model_fps,
            method=method, model=model or {}, frame_numbering=self.frame_numbering,
            first_frame=self.number(self.info.frame_numbers[0] if self.info.frame_numbers else 0),
            shot_cuts=[self.number(self.steps_source[s]) for s in self.cut_steps],
            part_s=self.part_read(),
        )

    def part_read(self) -> Optional[List[Optional[float]]]:
        """``[start_s, end_s]`` asked for when only part of the source was read (``end_s`` None:
        to the end); None for the whole source."""
        return None if self.part.whole else [self.part.start_s, self.part.end_s]

    def source_boxes(self) -> np.ndarray:
        """The face box of every decoded source frame ``(N, 4)`` float32 (NaN without one)."""
        boxes = np.full((max(self.decoded, 1), 4), np.nan, dtype=np.float32)
        origin = _position(self.info, self.first_index)
        for index, box in zip(self.steps_source, self.boxes):
            if box is not None:
                boxes[_position(self.info, index) - origin] = box
        # frames the resampling skipped (a source faster than the model) show the box before them
        seen = np.zeros(len(boxes), bool)
        for index in self.steps_source:
            seen[_position(self.info, index) - origin] = True
        known = np.where(seen, np.arange(len(boxes)), 0)
        return boxes[np.maximum.accumulate(known)]


def scan_video(source: str, contract: FeatureContract, extractor: FrameFeatureExtractor,
               batch_size: int, consume: Callable[[np.ndarray], None], progress: bool = True,
               keep: Sequence[str] = (), face: str = "largest", part: VideoPart = VideoPart()) -> VideoScan:
    """One streaming pass (:mod:`visionattn.data.stream`, as the feature cache makes training
    rows): frames on the contract's model-rate grid, its face front end
    (following the ``face`` chosen among several), feature rows in batches of ``batch_size``
    handed to ``consume``; the columns named in ``keep`` (from ``extractor.layout``) are kept
    for the whole video. ``part``: a frame folder's rate (default: the model rate) and the
    stretch to read."""
    model_fps = contract.model_fps
    source_fps = part.fps or model_fps
    info = probe(source, fps=source_fps)
    scan = VideoScan(info, model_fps, part=part, columns={name: [] for name in keep})
    pipeline = contract.face_pipeline(face=face)
    from tqdm import tqdm

    bar = tqdm(total=part.frames_of(info), unit="frame", desc=Path(source).name,
               disable=not progress_wanted(progress), dynamic_ncols=True)

    def decoded(index: int) -> None:
        scan.first_index = index if scan.decoded == 0 else scan.first_index
        scan.decoded += 1
        bar.update(1)

    def stepped() -> Iterator[Tuple[int, np.ndarray]]:
        for step, index, seconds, image in model_rate_frames(info, model_fps, part, on_decode=decoded):
            scan.steps_source.append(index)
            scan.steps_time.append(seconds)
            yield step, image

    def record(item) -> None:
        scan.boxes.append(item.box)
        # the Haar pipeline carries a box over misses; only its detections count as a face
        scan.present.append(bool(getattr(item, "present", getattr(item, "detected", True))))
        if getattr(item, "cut", False):
            scan.cut_steps.append(item.index)

    def flush(items: list) -> None:
        rows = extractor(items)
        for name in keep:
            lo, hi = extractor.layout[name]
            scan.columns[name].append(rows[:, lo:hi].astype(np.float32))
        consume(rows)

    try:
        face_batches(pipeline, stepped(), batch_size, flush, on_item=record)
    finally:
        bar.close()
    scan.face_found = bool(pipeline.report.face_found)
    scan.faces_in_view = int(getattr(pipeline.report, "most_faces", 0))
    return scan


def _position(info: VideoInfo, index: int) -> int:
    """Row of a source frame index in per-frame arrays (image folders number frames their own way)."""
    if info.frame_numbers is None:
        return index
    return int(np.searchsorted(info.frame_numbers, index))
