"""The interval a training-free spotter reports, in the frames of its input."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple


@dataclass(frozen=True)
class SpottedInterval:
    """One expression: frames ``onset..offset`` of the input (inclusive, 0-based), ``type``
    ``micro`` / ``macro``, ``emotion`` one of negative / positive / surprise / others, ``score``
    in (0, 1], ``apex`` the frame where the spotter's curve peaks."""

    onset: int
    offset: int
    type: str
    emotion: str
    score: float
    apex: int

    def as_tuple(self) -> Tuple[int, int, str, str, float]:
        return (self.onset, self.offset, self.type, self.emotion, self.score)
