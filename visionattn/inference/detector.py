"""Expression detection in any video, streamed: frames -> face crops -> features -> FEDN windows.

One pass over the video in constant memory: frames are decoded one at a time and resampled to
the frame rate the model was trained at (so 25, 29.97, 60 fps and variable-rate videos all
look like the training data), faces are tracked and cropped by the same pipeline that made
the training features, features are computed in batches, and the temporal model runs over
overlapping windows (:mod:`.stitching`). Only small per-frame records (time, source frame,
face box: a few bytes each) are kept for the whole video.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Iterable, Iterator, List, Optional, Tuple

import numpy as np
import torch

from ..data.frames import index_ranges, iter_timed_frames, probe
from ..features.extraction import FrameFeatureExtractor
from ..utils import UserError
from .record import DetectorRecord
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
    """

    def __init__(self, record: DetectorRecord, device: str = "cpu", batch_size: int = 64,
                 window: Optional[int] = None, overlap: Optional[int] = None, threshold: Optional[float] = None,
                 encoder_checkpoint: Optional[str] = None):
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise UserError(f"--device {device}: CUDA is not available on this machine")
        self.record, self.device, self.batch_size = record, device, batch_size
        self.fps = record.fps
        self.window = window or record.window
        self.overlap = overlap if overlap is not None else self.window // 4
        if not 0 <= self.overlap < self.window:
            raise UserError(f"overlap {self.overlap} must be in [0, window={self.window})")
        names = record.type_names
        self.thresholds = record.threshold_tuple() if threshold is None else (float(threshold),) * len(names)
        settings = record.features
        if encoder_checkpoint is not None:
            settings = replace(settings, checkpoint_path=encoder_checkpoint)
        self.settings = settings
        self.extractor = FrameFeatureExtractor(settings, device=device, batch_size=batch_size)
        self.model = record.build_model(device)

    def predict_window(self, features: torch.Tensor) -> dict:
        """FEDN detections (one :meth:`FEDN.predict` dict) for one window of features ``(T, D)``."""
        return self.model.predict(features[None].to(self.device))[0]

    def detect(self, source: str, progress: bool = True) -> Tuple[VideoResult, np.ndarray]:
        """Detections in ``source`` (a video file or an image folder), and the face box per
        source frame ``(N, 4)`` float32 ``(x, y, w, h)`` (NaN where the frame was not used)."""
        info = probe(source, fps=self.fps)
        fps = self.fps
        pipeline = self.settings.face_pipeline()
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
