"""What ``visionattn detect`` finds in one video, and how it is written to disk."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List

from ..evaluation import Interval, write_intervals_csv
from ..utils import atomic_write_json


@dataclass(frozen=True)
class DetectedInterval:
    """One expression: inclusive ``[onset, offset]`` in the source video's frame indices (0-based)
    and in seconds from its start (from the decoder's timestamps), its type (``micro`` /
    ``macro``), emotion and score in [0, 1]."""

    onset: int
    offset: int
    onset_s: float
    offset_s: float
    type: str
    emotion: str
    score: float


@dataclass
class VideoResult:
    """Everything known about one processed video.

    ``frames_without_face``: inclusive ranges of source frame indices where no face was
    detected (their crops came from the last box seen, or a centred square before the first
    face). ``face_found`` is False when the whole video had none; the intervals are then empty.
    """

    video: str
    fps: float
    frame_count: int
    duration_s: float
    width: int
    height: int
    face_found: bool
    intervals: List[DetectedInterval] = field(default_factory=list)
    frames_without_face: List[List[int]] = field(default_factory=list)
    threshold: Dict[str, float] = field(default_factory=dict)  # score threshold per type
    model_fps: float = 30.0

    @property
    def name(self) -> str:
        return Path(self.video).stem

    def to_dict(self) -> dict:
        return asdict(self)

    def write_json(self, path: Path) -> None:
        atomic_write_json(path, self.to_dict())

    def write_csv(self, path: Path) -> None:
        """MEGC submission rows: ``subject,video,onset,offset,type,emotion,score`` (frames from 0).

        ``subject`` is the name of the video's folder (``s15`` in the CAS(ME)^2 layout), so the
        rows of several videos can be pooled and scored with ``visionattn evaluate``."""
        subject = Path(self.video).resolve().parent.name or "-"
        rows = [Interval(subject, self.name, i.onset, i.offset, i.type, i.emotion, i.score) for i in self.intervals]
        write_intervals_csv(path, rows)
