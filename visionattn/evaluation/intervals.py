"""Expression intervals, their inclusive-frame IoU, and the MEGC one-to-one greedy matching.

An interval is ``[onset, offset]`` in frames with both ends included, so ``[5, 5]`` is one
frame long and ``[1, 5]`` and ``[5, 9]`` share frame 5. A video is the pair ``(subject, video)``.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

from ..data.annotations import EXPRESSION_TYPES

TYPES = EXPRESSION_TYPES
# Spellings accepted for the type column (compared lower-cased), mapped to the stored name;
# ``me`` / ``mae`` are the short forms of MEGC submissions.
TYPE_ALIASES = {
    "micro": "micro", "micro-expression": "micro", "me": "micro",
    "macro": "macro", "macro-expression": "macro", "mae": "macro",
}
UNTYPED = ""  # the type of an interval read from a file without a type column

Threshold = Union[float, int, str, Fraction]
VideoKey = Tuple[str, str]


def normalise_type(value: str) -> Optional[str]:
    """``"micro"`` or ``"macro"`` for an accepted spelling (any case), else ``None``."""
    return TYPE_ALIASES.get(value.strip().lower())


def normalise_emotion(value: str) -> str:
    """Emotion labels compare case-insensitively: ``"Negative"`` and ``"negative "`` are one class."""
    return value.strip().lower()


@dataclass(frozen=True)
class Interval:
    """One ground-truth or predicted expression: frames ``onset..offset`` (inclusive) of a video.

    ``type`` is stored as ``"micro"`` or ``"macro"`` (``"Micro-expression"`` etc. are accepted),
    or ``""`` (:data:`UNTYPED`) when the file has no type column; ``emotion`` lower-cased; an
    empty emotion means "not labelled" and belongs to no class. ``score`` ranks predictions for
    detection mAP; ground truth ignores it.
    """

    subject: str
    video: str
    onset: int
    offset: int
    type: str
    emotion: str = ""
    score: float = 1.0

    def __post_init__(self) -> None:
        kind = UNTYPED if self.type == UNTYPED else normalise_type(self.type)
        if kind is None:
            raise ValueError(f"unknown expression type {self.type!r}; allowed: {', '.join(TYPE_ALIASES)}")
        if self.onset > self.offset:
            raise ValueError(f"onset {self.onset} > offset {self.offset}")
        # Frozen dataclass: normalised values have to be written past __setattr__.
        object.__setattr__(self, "type", kind)
        object.__setattr__(self, "emotion", normalise_emotion(self.emotion))

    @property
    def key(self) -> VideoKey:
        return (self.subject, self.video)

    @property
    def length(self) -> int:
        return self.offset - self.onset + 1


def is_typed(*groups: Iterable[Interval]) -> bool:
    """True when every interval of every group has a type (micro or macro)."""
    return all(x.type != UNTYPED for group in groups for x in group)


def video_name(subject: str, video: str) -> str:
    """MEGC's ``vid`` of a video: ``subject_video`` (``s15_0101``, SAMM-LV ``006_1``, ``spNO.1_a``)."""
    return f"{subject}_{video}"


def overlap(a: Interval, b: Interval) -> Tuple[int, int]:
    """``(intersection, union)`` in frames; both ends count, so touching intervals share one frame."""
    inter = max(0, min(a.offset, b.offset) - max(a.onset, b.onset) + 1)
    return inter, a.length + b.length - inter


def iou(a: Interval, b: Interval) -> float:
    """Inclusive-frame temporal IoU of two intervals (their videos are not compared)."""
    inter, union = overlap(a, b)
    return inter / union


def exact_threshold(threshold: Threshold) -> Fraction:
    """The threshold as an exact fraction of the decimal it was written as (0.3 -> 3/10).

    ``Fraction(0.3)`` would be the binary float just below 3/10, and ``inter >= 0.3 * union``
    is false for inter=3, union=10 in floating point; going through ``str`` avoids both.
    """
    value = threshold if isinstance(threshold, Fraction) else Fraction(str(threshold))
    if not 0 < value <= 1:
        raise ValueError(f"IoU threshold must be in (0, 1], got {threshold}")
    return value


def meets(inter: int, union: int, threshold: Threshold) -> bool:
    """``inter / union >= threshold``, decided in integers so that e.g. 2/4 >= 0.5 holds exactly."""
    t = exact_threshold(threshold)
    return inter * t.denominator >= t.numerator * union


def group_by_video(intervals: Sequence[Interval]) -> Dict[VideoKey, List[int]]:
    """Indices of ``intervals`` per video, each list in the original (file) order."""
    groups: Dict[VideoKey, List[int]] = {}
    for i, item in enumerate(intervals):
        groups.setdefault(item.key, []).append(i)
    return groups


def greedy_match(truths: Sequence[Interval], preds: Sequence[Interval],
                 threshold: Threshold = 0.5) -> List[Tuple[int, int]]:
    """MEGC one-to-one greedy matching; returns ``(pred_index, truth_index)`` pairs.

    Predictions are taken in their order in ``preds``; each claims the first truth (in the
    order of ``truths``) of the same video that no earlier prediction claimed and whose IoU
    with it reaches ``threshold``. Types and emotions are not looked at: callers pass the
    subsets that may match each other.
    """
    t = exact_threshold(threshold)
    by_video = group_by_video(truths)
    taken = set()
    pairs = []
    for p, pred in enumerate(preds):
        for g in by_video.get(pred.key, ()):
            if g not in taken and meets(*overlap(pred, truths[g]), t):
                taken.add(g)
                pairs.append((p, g))
                break
    return pairs
