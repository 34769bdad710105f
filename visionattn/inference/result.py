"""What ``visionattn detect`` finds in one video, and how it is written to disk."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, List, Optional

from .. import __version__
from ..evaluation import Interval, write_intervals_csv
from ..utils import UserError, atomic_write_json

# What results written before ``frame_numbering`` existed used.
LEGACY_FRAME_NUMBERING = "0-based frame indices of the video file"
SCHEMA_VERSION = 1
"""Version of the JSON layout, described by :data:`SCHEMA_FILE` (results written before it
existed have no ``schema_version``)."""
SCHEMA_FILE = Path(__file__).with_name("detect_result.schema.json")
RENAMED_KEYS = {"threshold": "thresholds"}
"""JSON keys renamed since results were first written: old name -> new name."""


@dataclass(frozen=True)
class DetectedInterval:
    """One expression: inclusive ``[onset, offset]`` in the result's frame numbering (see
    ``VideoResult.frame_numbering``) and in seconds from the video's start (from the decoder's
    timestamps, the time of the onset and of the offset frame), its type (``micro`` / ``macro``),
    emotion and score in [0, 1]."""

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

    Every frame number in it (intervals, ``frames_without_face``, ``shot_cuts``) is in one
    numbering, described in words by ``frame_numbering`` (e.g. "1-based frame numbers of the
    video file", "the frame folder's own numbers") and pinned by ``first_frame``, the number of
    the video's first frame: frame ``n`` starts ``(n - first_frame) / fps`` seconds in.

    ``frames_without_face``: inclusive ranges of frames where no face was detected (their crops
    came from the last box seen, or a centred square before the first face), or, with the landmark
    front end, where its lips or eyes were past the frame edge (tracked but not read:
    :func:`~visionattn.faces.landmarks68.expression_in_view`). ``face_found`` is
    False when the whole video had none; the intervals are then empty. ``shot_cuts``: frames
    where a new shot starts. ``method``: what detected (``"fedn"``, ``"flow"``); ``model``: which
    model or settings (``name``, ``source`` such as a checkpoint path, ``description``);
    ``thresholds``: the level each type's score had to reach; ``score_name``: what that score
    is (FEDN's interval score, the flow spotter's motion energy). ``faces_in_view``: the most
    faces seen in one frame (more than one: ``inputs['settings']['face']`` chose).
    ``inputs``: what made the result (the video's identity, every setting), compared on a
    rerun. ``schema_version``, ``visionattn_version``: the layout and the package that wrote it.
    ``part_s``: ``[start, end]`` seconds asked for when only part of the video was read
    (``--start/--end``; ``end`` None: to the end), the frames shown at ``start <= t < end``;
    else None. ``frame_count`` then counts the frames read, while frame numbers and times stay
    those of the whole video.
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
    thresholds: Dict[str, float] = field(default_factory=dict)  # score threshold per type
    score_name: str = ""
    faces_in_view: int = 0
    model_fps: float = 30.0
    method: str = "fedn"
    model: Dict[str, Any] = field(default_factory=dict)
    shot_cuts: List[int] = field(default_factory=list)
    frame_numbering: str = LEGACY_FRAME_NUMBERING
    first_frame: int = 0
    inputs: Dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION
    visionattn_version: str = __version__
    part_s: Optional[List[Optional[float]]] = None

    @property
    def name(self) -> str:
        return Path(self.video).stem

    @property
    def unread_frame_count(self) -> int:
        """How many frames ``frames_without_face`` covers."""
        return sum(last - first + 1 for first, last in self.frames_without_face)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict, where: str = "result") -> "VideoResult":
        """Inverse of :meth:`to_dict`; keys added since a result was written take their defaults,
        unknown keys are ignored. Raises ``UserError`` naming ``where`` and the key at fault."""
        known = {f.name for f in fields(cls)}
        data = {RENAMED_KEYS.get(k, k): v for k, v in data.items()}
        # written before the layout had a version: not this version's
        data.setdefault("schema_version", 0)
        data.setdefault("visionattn_version", "")
        kwargs = {k: v for k, v in data.items() if k in known}
        try:
            kwargs["intervals"] = [DetectedInterval(**i) for i in kwargs.get("intervals", [])]
            return cls(**kwargs)
        except TypeError as err:  # a missing or misspelt key, in the result or one of its intervals
            raise UserError(f"{where}: {err}") from None

    @classmethod
    def read_json(cls, path: Path) -> "VideoResult":
        """Read a ``<name>.json`` that :meth:`write_json` wrote (any version)."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UserError(f"{path}: no such file") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise UserError(f"{path}: not a JSON file ({err})") from None
        if not isinstance(data, dict):
            raise UserError(f"{path}: expected a JSON object")
        return cls.from_dict(data, where=str(path))

    def write_json(self, path: Path) -> None:
        atomic_write_json(path, self.to_dict())

    def write_csv(self, path: Path) -> None:
        """MEGC submission rows: ``subject,video,onset,offset,type,emotion,score``, the frames as
        stored, i.e. in ``frame_numbering`` (the caller stores the annotations' numbering, so
        the rows score directly against a ground-truth file).

        ``subject`` is the name of the video's folder (``s15`` in the CAS(ME)^2 layout), so the
        rows of several videos can be pooled and scored with ``visionattn evaluate``."""
        subject = Path(self.video).resolve().parent.name or "-"
        rows = [Interval(subject, self.name, i.onset, i.offset, i.type, i.emotion, i.score) for i in self.intervals]
        write_intervals_csv(path, rows)
