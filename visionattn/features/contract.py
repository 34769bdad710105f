"""The feature contract: what a model reading feature rows and the code making them agree on.

Three things, defined here once: the rate of the rows (``model_fps``: every video is resampled to
it, so a model's windows and the motion lag are in its steps), how each row is made
(:class:`~visionattn.features.settings.FeatureSettings`, the motion interval among them) and which
columns hold what (:attr:`FeatureContract.layout`). FEDN training (the data module), the detector
record, both detectors and the flow spotter take them from a :class:`FeatureContract`; feature and
crop cache keys are derived from it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Tuple

from ..data.frames import DEFAULT_FPS
from ..models.mini_xception import FER_CLASSES
from ..utils import UserError
from .motion import feature_names as motion_feature_names
from .motion import motion_lag
from .settings import FeatureSettings

__all__ = ["APPEARANCE_DIM", "MOTION_DIM", "FeatureContract", "feature_layout"]

MOTION_DIM = len(motion_feature_names())
APPEARANCE_DIM = 128  # the mini-Xception's channels before its head

Layout = Dict[str, Tuple[int, int]]


def _stream_parts(stream: str, encoder_dim: int) -> List[Tuple[str, int]]:
    """The named parts of one stream's columns and their widths, in row order."""
    if stream == "motion":
        return [("motion", MOTION_DIM)]
    if stream == "appearance":
        return [("appearance_logits", len(FER_CLASSES)), ("appearance_embedding", APPEARANCE_DIM)]
    return [("encoder", encoder_dim)]


def feature_layout(settings: FeatureSettings, encoder_dim: int = 0) -> Layout:
    """Column range ``[start, end)`` of each part of a feature row made with ``settings``:
    with the landmark front end ``face`` and ``motion_valid`` (one flag each), then per stream,
    in ``settings.streams`` order, ``motion``, ``appearance_logits`` and
    ``appearance_embedding``, ``encoder`` (``encoder_dim`` columns). Nothing is loaded."""
    sizes: List[Tuple[str, int]] = [("face", 1), ("motion_valid", 1)] if settings.front_end == "landmarks" else []
    for stream in settings.streams:
        sizes += _stream_parts(stream, encoder_dim)
    layout, start = {}, 0
    for name, size in sizes:
        layout[name] = (start, start + size)
        start += size
    return layout


@dataclass(frozen=True)
class FeatureContract:
    """Feature rows as a model sees them: how they are made, at what rate, what each column is.

    Args:
        settings: how each row is made (face front end, streams, ``motion_interval_s``, ...).
        model_fps: rows per second of video; sources at another rate are resampled to it.
        encoder_dim: width of the ``encoder`` stream (0 without one).
    """

    settings: FeatureSettings = field(default_factory=FeatureSettings)
    model_fps: float = DEFAULT_FPS
    encoder_dim: int = 0

    def __post_init__(self) -> None:
        if not self.model_fps > 0:
            raise UserError(f"model frame rate {self.model_fps!r}: must be > 0")
        if self.encoder_dim < 0 or (self.encoder_dim and "encoder" not in self.settings.streams):
            raise UserError(f"encoder width {self.encoder_dim} does not fit the streams {list(self.settings.streams)}")

    @classmethod
    def for_rows(cls, settings: FeatureSettings, model_fps: float, dim: int) -> "FeatureContract":
        """The contract of ``dim``-wide rows: the encoder's width is what the other parts leave."""
        fixed = max((end for _, end in feature_layout(settings).values()), default=0)
        encoder_dim = dim - fixed if "encoder" in settings.streams else 0
        if encoder_dim < 0 or ("encoder" not in settings.streams and dim != fixed):
            raise UserError(f"{dim}-wide feature rows do not fit the streams {list(settings.streams)} "
                            f"({fixed} columns without an encoder)")
        return cls(settings, float(model_fps), encoder_dim)

    @property
    def motion_interval_s(self) -> float:
        """Seconds between the two faces of a motion row."""
        return self.settings.motion_interval_s

    @property
    def motion_lag(self) -> int:
        """The same in rows: :func:`~visionattn.features.motion.motion_lag` at ``model_fps``."""
        return motion_lag(self.motion_interval_s, self.model_fps)

    @property
    def layout(self) -> Layout:
        """Column range of each part of a row (:func:`feature_layout`)."""
        return feature_layout(self.settings, self.encoder_dim)

    @property
    def dim(self) -> int:
        return max((end for _, end in self.layout.values()), default=0)

    def stream_columns(self) -> Layout:
        """Column range of each stream, in ``settings.streams`` order."""
        layout, columns = self.layout, {}
        for stream in self.settings.streams:
            names = [name for name, _ in _stream_parts(stream, self.encoder_dim)]
            columns[stream] = (layout[names[0]][0], layout[names[-1]][1])
        return columns

    def face_pipeline(self, face: str = "largest"):
        """A fresh face front end (one per video) for frames at the model rate, following the
        ``face`` chosen among several (:meth:`FeatureSettings.face_pipeline`)."""
        return self.settings.face_pipeline(self.model_fps, face=face)

    def _at_model_rate(self, key: dict) -> dict:
        # 30 fps is the rate every earlier cache was made at: its keys carry no rate, and stay valid.
        if abs(self.model_fps - DEFAULT_FPS) > 1e-9:
            key["fps"] = self.model_fps
        return key

    def cache_key(self) -> dict:
        """Cache key of the feature rows."""
        return self._at_model_rate(self.settings.key_settings())

    def crops_key(self) -> dict:
        """Cache key of the face crops alone (shared by every encoder that reads them)."""
        return self._at_model_rate(self.settings.crops_settings(self.model_fps))

    def to_dict(self) -> Dict[str, Any]:
        """What a detector record stores besides the settings: the rate, the lag and the layout
        (so a reader sees the columns without rebuilding anything)."""
        return {"model_fps": float(self.model_fps), "motion_interval_s": float(self.motion_interval_s),
                "motion_lag": self.motion_lag, "encoder_dim": int(self.encoder_dim),
                "layout": {name: list(span) for name, span in self.layout.items()}}
