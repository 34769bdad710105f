"""The per-frame streams a spotting method reads, taken from the landmark front end's feature rows."""
from __future__ import annotations

from typing import Dict, List, NamedTuple, Sequence, Tuple

import numpy as np

from ..features.front_end import face_spans
from ..features.motion import feature_names as motion_feature_names

__all__ = ["FeatureStreams", "emotion_probabilities", "feature_streams"]


class FeatureStreams(NamedTuple):
    """``motion`` ``(T, 27)`` float32 (% IOD), ``valid`` ``(T,)`` bool, ``spans`` the inclusive
    ``(start, end)`` rows with one face and no cut inside, ``emotion_probs`` ``(T, 7)`` FER
    posteriors (NaN rows without a face)."""

    motion: np.ndarray
    valid: np.ndarray
    spans: List[Tuple[int, int]]
    emotion_probs: np.ndarray


def emotion_probabilities(logits: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Softmax ``(T, 7)`` float64 of the appearance network's logits ``(T, 7)`` (FER classes),
    NaN rows where ``present`` ``(T,)`` is False (no face: the logits there are zeros)."""
    logits = np.asarray(logits, np.float64)
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    probs[~np.asarray(present, bool)] = np.nan
    return probs


def feature_streams(rows: np.ndarray, layout: Dict[str, Tuple[int, int]], cuts: Sequence[int]) -> FeatureStreams:
    """The streams of feature rows ``(T, D)`` with the face flag, motion and appearance columns
    (``layout``: :attr:`FrameFeatureExtractor.layout`); ``cuts``: the rows right after a shot cut."""
    def column(name: str) -> np.ndarray:
        return np.asarray(rows[:, slice(*layout[name])], np.float32)

    present = column("face")[:, 0] > 0.5
    return FeatureStreams(column("motion").reshape(-1, len(motion_feature_names())), column("motion_valid")[:, 0] > 0.5,
                          face_spans(present, cuts), emotion_probabilities(column("appearance_logits"), present))
