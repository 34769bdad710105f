"""Expression detection in any video, streamed: frames -> face crops -> features -> FEDN windows.

One pass over the video in constant memory: frames are decoded one at a time and resampled to
the frame rate the model was trained at (so 25, 29.97, 60 fps and variable-rate videos all
look like the training data), faces are tracked and cropped by the same pipeline that made
the training features, features are computed in batches, and the temporal model runs over
overlapping windows (:mod:`.stitching`). Only small per-frame records (time, source frame,
face box: a few bytes each) are kept for the whole video.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, List, Optional, Tuple

import numpy as np
import torch

from ..data.frames import DEFAULT_FPS, index_ranges, iter_timed_frames, probe
from ..models.fedn.config import FEDNConfig
from ..models.fedn.model import FEDN
from ..spotting.features import FeatureSettings, FrameFeatureExtractor, face_pipeline
from ..utils import UserError
from .result import DetectedInterval, VideoResult
from .stitching import WindowStitcher


def resample(frames: Iterable[Tuple[int, float, np.ndarray]], fps: float
             ) -> Iterator[Tuple[int, int, float, np.ndarray]]:
    """Nearest-frame resampling onto the grid ``k / fps`` seconds.

    ``frames`` yields ``(source_index, seconds, image)`` with increasing times; yields
    ``(step, source_index, seconds, image)`` for ``step = 0, 1, ...``, each step showing the
    source frame nearest in time (a frame repeats when the source is slower, and is skipped
    when it is faster). Streams: holds one frame.
    """
    step = 0
    held: Optional[Tuple[int, float, np.ndarray]] = None
    for index, seconds, image in frames:
        if held is not None:
            boundary = (held[1] + seconds) / 2  # grid times before it are nearer the held frame
            while step / fps < boundary:
                yield step, held[0], held[1], held[2]
                step += 1
        held = (index, seconds, image)
    if held is not None:
        # The last frame lasts until one grid period after its time, and is shown at least once.
        while step == 0 or step / fps < held[1] + 0.5 / fps:
            yield step, held[0], held[1], held[2]
            step += 1


@dataclass
class TrainedDetector:
    """What a training checkpoint holds that detection needs."""

    model: FEDN
    features: FeatureSettings
    thresholds: Tuple[float, ...]  # per expression type, in config.type_names order
    window: int
    fps: float
    checkpoint: Path


def load_checkpoint(path: str, device: str = "cpu") -> TrainedDetector:
    """A ``visionattn train`` checkpoint (``.ckpt``): the FEDN weights, the feature settings its data
    was made with, the score threshold chosen on validation subjects and the training window."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p}: checkpoint not found")
    try:
        # Our own training checkpoint: its hyper-parameters are dataclasses, hence not weights_only.
        ckpt = torch.load(p, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means "not a checkpoint"
        raise UserError(f"{p}: not a readable checkpoint ({type(err).__name__}: {err})") from None
    for key in ("state_dict", "hyper_parameters", "datamodule_hyper_parameters"):
        if not isinstance(ckpt, dict) or key not in ckpt:
            raise UserError(f"{p}: not a `visionattn train` checkpoint (no '{key}')")
    hp, dhp = ckpt["hyper_parameters"], ckpt["datamodule_hyper_parameters"]
    config = _as(FEDNConfig, hp.get("fedn"), p, "hyper_parameters.fedn")
    settings = _as(FeatureSettings, dhp.get("features"), p, "datamodule_hyper_parameters.features")
    config.backbone = None
    model = FEDN(config)
    weights = {k[len("model."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if missing or unexpected:
        raise UserError(f"{p}: weights do not fit the model its hyper-parameters describe "
                        f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    stored = ckpt["state_dict"].get("threshold", torch.tensor(0.3)).flatten()
    thresholds = tuple(float(stored[min(i, len(stored) - 1)]) for i in range(len(config.type_names)))
    return TrainedDetector(model.to(device).eval(), settings, thresholds, int(dhp.get("window", 1024)),
                           float(dhp.get("fps", DEFAULT_FPS)), p)


def _as(cls, value, path: Path, key: str):
    if isinstance(value, cls):
        return value
    if isinstance(value, dict):
        try:
            return cls(**value)
        except TypeError as err:
            raise UserError(f"{path}: {key}: {err}") from None
    raise UserError(f"{path}: no '{key}' in the checkpoint")


class ExpressionDetector:
    """Runs a trained FEDN on videos.

    Args:
        trained: from :func:`load_checkpoint`.
        device: ``cpu`` or ``cuda`` (features and the temporal model).
        batch_size: face crops per frame-encoder batch.
        window, overlap: temporal windows in model steps (default: the training window, a
            quarter of it overlapping).
        threshold: one score threshold for every type (default: the per-type thresholds chosen on
            validation subjects in training).
        encoder_checkpoint: the frame encoder's weights, if they moved since training.
    """

    def __init__(self, trained: TrainedDetector, device: str = "cpu", batch_size: int = 64,
                 window: Optional[int] = None, overlap: Optional[int] = None, threshold: Optional[float] = None,
                 encoder_checkpoint: Optional[str] = None):
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise UserError(f"--device {device}: CUDA is not available on this machine")
        self.trained, self.device, self.batch_size = trained, device, batch_size
        self.window = window or trained.window
        self.overlap = overlap if overlap is not None else self.window // 4
        if not 0 <= self.overlap < self.window:
            raise UserError(f"overlap {self.overlap} must be in [0, window={self.window})")
        names = trained.model.config.type_names
        self.thresholds = trained.thresholds if threshold is None else (float(threshold),) * len(names)
        settings = trained.features
        if encoder_checkpoint is not None:
            settings.checkpoint_path = encoder_checkpoint
        self.settings = settings
        self.extractor = FrameFeatureExtractor(settings, device=device, batch_size=batch_size)
        self.model = trained.model.to(device)

    def predict_window(self, features: torch.Tensor) -> dict:
        """FEDN detections (one :meth:`FEDN.predict` dict) for one window of features ``(T, D)``."""
        return self.model.predict(features[None].to(self.device))[0]

    def detect(self, source: str, progress: bool = True) -> Tuple[VideoResult, np.ndarray]:
        """Detections in ``source`` (a video file or an image folder), and the face box per
        source frame ``(N, 4)`` float32 ``(x, y, w, h)`` (NaN where the frame was not used)."""
        info = probe(source, fps=self.trained.fps)
        fps = self.trained.fps
        pipeline = face_pipeline(self.settings)
        stitcher = WindowStitcher(self.predict_window, self.window, self.overlap, min_score=self.thresholds)
        steps_source: List[int] = []   # source frame index of each model step
        steps_time: List[float] = []   # its time in seconds
        boxes: List[Tuple[float, float, float, float]] = []
        missing_steps: List[int] = []
        from tqdm import tqdm

        bar = tqdm(total=info.frame_count, unit="frame", desc=Path(source).name, disable=not progress,
                   dynamic_ncols=True)
        seen = {"last": -1}

        def timed() -> Iterator[Tuple[int, float, np.ndarray]]:
            for position, (index, seconds, image) in enumerate(iter_timed_frames(source, fps=fps)):
                seen["last"] = position
                bar.update(1)
                yield index, seconds, image

        def stepped() -> Iterator[Tuple[int, np.ndarray]]:
            for step, index, seconds, image in resample(timed(), fps):
                steps_source.append(index)
                steps_time.append(seconds)
                yield step, image

        pending: List[np.ndarray] = []
        try:
            for crop in pipeline.process(stepped()):
                pending.append(crop.image)
                boxes.append(crop.box)
                if not crop.detected:
                    missing_steps.append(crop.index)
                if len(pending) >= self.batch_size:
                    stitcher.push(self.extractor(np.stack(pending)))
                    pending = []
            if pending:
                stitcher.push(self.extractor(np.stack(pending)))
            found = pipeline.report.face_found
            detections = stitcher.finish() if found and steps_source else []
        finally:
            bar.close()

        decoded = seen["last"] + 1
        names_t, names_e = self.model.config.type_names, self.model.config.emotion_names
        intervals = [
            DetectedInterval(steps_source[d.onset], steps_source[d.offset], round(steps_time[d.onset], 4),
                             round(steps_time[d.offset], 4), names_t[d.type], names_e[d.emotion], round(d.score, 4))
            for d in detections
        ]
        source_boxes = np.full((max(decoded, 1), 4), np.nan, dtype=np.float32)
        for index, box in zip(steps_source, boxes):
            source_boxes[_position(info, index)] = box
        # frames the resampling skipped (a source faster than the model) show the box before them
        known = np.where(~np.isnan(source_boxes[:, 0]), np.arange(len(source_boxes)), 0)
        source_boxes = source_boxes[np.maximum.accumulate(known)]
        missing_source = sorted({steps_source[s] for s in missing_steps})
        duration = (steps_time[-1] + 1.0 / fps) if steps_time else 0.0
        result = VideoResult(
            video=str(source), fps=info.fps, frame_count=decoded, duration_s=round(duration, 4), width=info.width,
            height=info.height, face_found=bool(found), intervals=intervals,
            frames_without_face=index_ranges(missing_source),
            threshold={k: round(v, 4) for k, v in zip(names_t, self.thresholds)}, model_fps=fps,
        )
        return result, source_boxes


def _position(info, index: int) -> int:
    """Row of a source frame index in per-frame arrays (image folders number frames their own way)."""
    if info.frame_numbers is None:
        return index
    return int(np.searchsorted(info.frame_numbers, index))
