"""Appearance-led spotting confirmed by region motion (``visionattn detect --method appearance``).

The appearance network's 4-class posterior (FER mini-Xception, :func:`~visionattn.features.emotions.fer_to_megc`)
is compared with the face's own most neutral stretch; an expression is a stretch where one class
has gained at least ``peak_gain`` of the probability mass over that reference, confirmed by a
facial movement at its onset (region motion against the noise of the clip's quietest seconds).
Training-free; the derivation and the choice of each default are in ``docs/appearance_spotter.md``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..data.annotations import EMOTIONS4
from ..features.emotions import fer_to_megc
from ..features.motion import REFERENCE_REGION, REGION_NAMES, STATS
from ..models.mini_xception import FER_CLASSES
from ..utils import UserError
from .interval import SpottedInterval
from .streams import feature_streams

__all__ = ["AppearanceSpotterSettings", "AppearanceSpotResult", "SpottedInterval", "apex_emotions", "motion_level",
           "neutral_reference", "span_gain", "spot_appearance", "spot_appearance_rows"]

_SPOTTED = EMOTIONS4[:3]  # negative, positive, surprise; "others" (FER's neutral) is the rest state
_NEUTRAL = EMOTIONS4.index("others")
_NEUTRAL_PRIOR = np.eye(len(EMOTIONS4))[_NEUTRAL]  # a face at rest reads neutral


@dataclass
class AppearanceSpotterSettings:
    """Every parameter of :func:`spot_appearance`. Durations in seconds, gains in probability."""

    smooth_s: float = 0.2
    """Centred moving mean of the posterior (the network reads each frame alone: flicker)."""
    neutral_window_s: float = 0.5
    """Length of the most neutral stretch taken as the face's own reference."""
    rest_level: float = 0.5
    """Neutral probability a face at rest reaches; a reference stretch below it is blended with the
    neutral prior in proportion (the clip never shows the face at rest)."""
    peak_gain: float = 0.5
    """An expression's class gains at least this much probability over the reference (half the
    mass moved to it) at its apex..."""
    edge_gain: float = 0.25
    """...and it lasts while its class leads and has gained at least this much."""
    merge_gap_s: float = 0.3
    """Stretches of one class this close are one expression (a held expression read with a dip)."""
    min_duration_s: float = 0.2
    """Shorter stretches are flicker, not expressions."""
    micro_max_s: float = 0.5
    """MEGC boundary: micro when the duration is at most this."""
    motion_k: float = 2.0
    """Onset confirmation: the region motion near the onset exceeds this many times the noise floor."""
    onset_window_s: float = 0.5
    """The motion is looked for this far either side of the onset."""
    quiet_block_s: float = 1.0
    """Noise floor: the RMS region motion of blocks this long (half overlapping)..."""
    quiet_quantile: float = 0.25
    """...at this quantile (the quietest stretches, so an expressive clip keeps its onsets)."""
    min_noise: float = 0.1
    """Floor of the noise level, % IOD."""
    regions: Tuple[str, ...] = ("right_brow", "left_brow", "right_mouth_corner", "left_mouth_corner", "mouth", "chin")
    """Regions whose motion counts (eyes out: blinks; nose out: it is the head reference)."""

    def settings(self) -> Dict[str, Any]:
        """JSON-ready, for records."""
        return {"method": "appearance", "version": 1, **asdict(self), "regions": list(self.regions)}

    def validate(self) -> None:
        """Raise :class:`UserError` naming the first unusable setting."""
        for name in ("smooth_s", "neutral_window_s", "rest_level", "peak_gain", "micro_max_s", "quiet_block_s",
                     "min_noise"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise UserError(f"{name}: must be a positive number, got {value!r}")
        for name in ("edge_gain", "merge_gap_s", "min_duration_s", "motion_k", "onset_window_s"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value >= 0):
                raise UserError(f"{name}: must be a number >= 0, got {value!r}")
        if self.edge_gain > self.peak_gain:
            raise UserError(f"edge_gain: must not exceed peak_gain ({self.peak_gain}), got {self.edge_gain!r}")
        if not 0 <= self.quiet_quantile <= 1:
            raise UserError(f"quiet_quantile: must lie in [0, 1], got {self.quiet_quantile!r}")
        bad = [r for r in self.regions if r not in REGION_NAMES or r == REFERENCE_REGION]
        if not self.regions or bad:
            raise UserError(f"regions: name regions of {[r for r in REGION_NAMES if r != REFERENCE_REGION]}, "
                            f"got {list(self.regions)}")


@dataclass
class AppearanceSpotResult:
    """What :func:`spot_appearance` found and the curves it decided on.

    ``energy``: ``(T,)`` the largest class gain over the reference (0 where no face);
    ``threshold``: ``peak_gain``; ``motion``: ``(T,)`` region motion in noise-floor units (NaN
    where not valid); ``usable``: ``(T,)`` frames inside a face span; ``references``: per span,
    ``(start, end, reference 4-vector)``.
    """

    intervals: List[SpottedInterval]
    energy: np.ndarray
    threshold: float
    motion: np.ndarray
    usable: np.ndarray
    references: List[Tuple[int, int, List[float]]] = field(default_factory=list)
    settings: Dict[str, Any] = field(default_factory=dict)


def _moving_mean(x: np.ndarray, width: int) -> np.ndarray:
    """Centred moving mean of ``(n, C)`` ``x`` over ``width`` rows, ends repeated."""
    if width <= 1 or len(x) < 2:
        return x.copy()
    before = width // 2
    padded = np.concatenate([np.repeat(x[:1], before, 0), x, np.repeat(x[-1:], width - 1 - before, 0)])
    sums = np.cumsum(np.concatenate([np.zeros((1, x.shape[1])), padded]), axis=0)
    return (sums[width:] - sums[:-width]) / width


def neutral_reference(probs4: np.ndarray, window: int, rest_level: float) -> Tuple[np.ndarray, int]:
    """The reference posterior of one face span ``(n, 4)`` (MEGC order) and the start row of its
    most neutral stretch: the mean of the ``window`` rows with the highest mean neutral
    (``others``) probability, blended with the neutral prior ``(0, 0, 0, 1)`` by ``1 - a``,
    ``a = min(1, that mean / rest_level)``."""
    window = max(1, min(window, len(probs4)))
    neutral = np.convolve(probs4[:, _NEUTRAL], np.ones(window) / window, mode="valid")
    start = int(np.argmax(neutral))
    weight = min(1.0, float(neutral[start]) / rest_level)
    return weight * probs4[start:start + window].mean(0) + (1 - weight) * _NEUTRAL_PRIOR, start


def motion_level(motion: np.ndarray, valid: np.ndarray, fps: float, settings: AppearanceSpotterSettings) -> np.ndarray:
    """``(T,)`` region motion (the norm of the used regions' ``(dx, dy)``) over the noise floor:
    the ``quiet_quantile`` of the RMS of ``quiet_block_s`` blocks of valid frames (NaN where not valid)."""
    cols = [REGION_NAMES.index(r) * len(STATS) + c for r in settings.regions for c in (0, 1)]
    level = np.sqrt((np.asarray(motion, np.float64)[:, cols] ** 2).sum(1))
    level[~valid] = np.nan
    block = max(2, int(round(settings.quiet_block_s * fps)))
    rms = [np.sqrt(np.nanmean(level[i:i + block] ** 2)) for i in range(0, max(1, len(level) - block + 1), block // 2)
           if np.count_nonzero(valid[i:i + block]) * 2 >= block]
    noise = max(float(np.quantile(rms, settings.quiet_quantile)) if rms else 0.0, settings.min_noise)
    return level / noise


def _runs(labels: np.ndarray) -> List[Tuple[int, int, int]]:
    """``(start, end, label)`` of each maximal run of one label >= 0."""
    out, t = [], 0
    while t < len(labels):
        end = t
        while end + 1 < len(labels) and labels[end + 1] == labels[t]:
            end += 1
        if labels[t] >= 0:
            out.append((t, end, int(labels[t])))
        t = end + 1
    return out


def _span_intervals(gain: np.ndarray, moving: np.ndarray, fps: float,
                    s: AppearanceSpotterSettings) -> List[Tuple[int, int, int, int, float]]:
    """``(onset, offset, class, apex, gain at apex)`` in rows of one span; ``gain`` ``(n, 3)`` the
    spotted classes' gains, ``moving`` ``(n,)`` the motion level (NaN unknown)."""
    lead = gain.argmax(1)
    labels = np.where(gain.max(1) >= s.edge_gain, lead, -1)
    kept = [(a, b, c) for a, b, c in _runs(labels) if gain[a:b + 1, c].max() >= s.peak_gain]
    merged: List[List[int]] = []
    for a, b, c in kept:
        if merged and merged[-1][2] == c and a - merged[-1][1] - 1 <= s.merge_gap_s * fps:
            merged[-1][1] = b
        else:
            merged.append([a, b, c])
    out = []
    reach = int(round(s.onset_window_s * fps))
    for a, b, c in merged:
        if b - a + 1 < s.min_duration_s * fps:
            continue
        # The face moved where the expression began; where that was before the span's first row,
        # where it ended; one that fills its whole span shows neither and stands on the reading.
        edge = a if a > 0 else (b if b < len(gain) - 1 else None)
        if edge is not None:
            near = moving[max(0, edge - reach):edge + reach + 1]
            if not (np.isfinite(near).any() and np.nanmax(near) >= s.motion_k):
                continue
        apex = a + int(np.argmax(gain[a:b + 1, c]))
        out.append((a, b, c, apex, float(gain[apex, c])))
    return out


def span_gain(rows: np.ndarray, fps: float, settings: AppearanceSpotterSettings,
              where: Tuple[int, int] = (0, -1)) -> Tuple[np.ndarray, np.ndarray]:
    """One face span's reading against its own neutral: ``rows`` ``(n, 7)`` FER posteriors ->
    ``(gain (n, 3), reference (4,))``, the smoothed MEGC probabilities of negative, positive and
    surprise minus those of the span's most neutral stretch (:func:`neutral_reference`).
    ``where``: the span's rows, for the error message."""
    if not np.isfinite(rows).all():
        raise ValueError(f"emotion_probs: rows {where[0]}..{where[1]} form a face span but hold NaN")
    smooth = _moving_mean(fer_to_megc(rows, FER_CLASSES), max(1, int(round(settings.smooth_s * fps))))
    reference, _ = neutral_reference(smooth, int(round(settings.neutral_window_s * fps)), settings.rest_level)
    return smooth[:, :len(_SPOTTED)] - reference[:len(_SPOTTED)], reference


def apex_emotions(emotion_probs: np.ndarray, spans: Sequence[Tuple[int, int]], intervals: Sequence[Tuple[int, int]],
                  fps: float, settings: Optional[AppearanceSpotterSettings] = None) -> List[str]:
    """The emotion the appearance network reads in each interval, as this spotter reads it: in
    the interval's face span (the one it overlaps most), the class that gained most over the
    span's neutral reference at the interval's row of largest gain; ``others`` where no class
    gained ``edge_gain`` there, or the interval meets no span.

    Args:
        emotion_probs: ``(T, 7)`` appearance posteriors in ``FER_CLASSES`` order (NaN without a face).
        spans: inclusive ``(start, end)`` face spans, as :func:`spot_appearance` takes them.
        intervals: inclusive ``(onset, offset)`` rows, e.g. a trained detector's detections.
    """
    s = settings or AppearanceSpotterSettings()
    probs = np.asarray(emotion_probs, np.float64)
    gains = {}
    labels = []
    for onset, offset in intervals:
        span = max(spans, key=lambda sp: min(offset, sp[1]) - max(onset, sp[0]), default=None)
        if span is None or min(offset, span[1]) < max(onset, span[0]):
            labels.append("others")
            continue
        if span not in gains:
            gains[span] = span_gain(probs[span[0]:span[1] + 1], fps, s, span)[0]
        inside = gains[span][max(onset, span[0]) - span[0]:min(offset, span[1]) - span[0] + 1]
        row, cls = np.unravel_index(int(np.argmax(inside)), inside.shape)
        labels.append(_SPOTTED[cls] if inside[row, cls] >= s.edge_gain else "others")
    return labels


def spot_appearance(emotion_probs: np.ndarray, motion: np.ndarray, valid: np.ndarray, fps: float,
                    spans: Sequence[Tuple[int, int]],
                    settings: Optional[AppearanceSpotterSettings] = None) -> AppearanceSpotResult:
    """Spot expressions in one video (see the module doc).

    Args:
        emotion_probs: ``(T, 7)`` appearance posteriors in ``FER_CLASSES`` order (NaN rows without a face).
        motion: ``(T, 27)`` the motion stream's features (% IOD); valid: ``(T,)`` bool.
        fps: frames per second of the rows.
        spans: inclusive ``(start, end)`` rows with one face tracked and no cut inside; nothing is
            reported outside them or across two of them.
        settings: the parameters (default: the defaults).

    Returns:
        :class:`AppearanceSpotResult`, intervals in rows, in time order.
    """
    s = settings or AppearanceSpotterSettings()
    s.validate()
    if not (np.isfinite(fps) and fps > 0):
        raise UserError(f"fps: must be a positive number, got {fps!r}")
    probs = np.asarray(emotion_probs, np.float64)
    n = len(probs)
    if probs.shape != (n, len(FER_CLASSES)):
        raise ValueError(f"emotion_probs: expected shape (T, {len(FER_CLASSES)}), got {probs.shape}")
    valid = np.asarray(valid, bool)
    if valid.shape != (n,) or np.shape(motion) != (n, len(REGION_NAMES) * len(STATS)):
        raise ValueError(f"motion {np.shape(motion)} and valid {valid.shape}: expected ({n}, 27) and ({n},)")
    moving = motion_level(motion, valid, fps, s)
    energy = np.zeros(n, np.float32)
    usable = np.zeros(n, bool)
    intervals: List[SpottedInterval] = []
    references = []
    for start, end in spans:
        gain, reference = span_gain(probs[start:end + 1], fps, s, (start, end))
        usable[start:end + 1] = True
        energy[start:end + 1] = np.maximum(gain.max(1), 0.0)
        references.append((start, end, [round(float(v), 4) for v in reference]))
        for a, b, c, apex, peak in _span_intervals(gain, moving[start:end + 1], fps, s):
            kind = "micro" if (b - a + 1) / fps <= s.micro_max_s + 1e-9 else "macro"
            intervals.append(SpottedInterval(start + a, start + b, kind, _SPOTTED[c], round(peak, 4), start + apex))
    intervals.sort(key=lambda x: x.onset)
    return AppearanceSpotResult(intervals, energy, float(s.peak_gain), moving, usable, references, s.settings())


def spot_appearance_rows(rows: np.ndarray, layout: Dict[str, Tuple[int, int]], cuts: Sequence[int], fps: float,
                         settings: Optional[AppearanceSpotterSettings] = None) -> AppearanceSpotResult:
    """:func:`spot_appearance` on feature rows ``(T, D)`` of the landmark front end with the motion
    and appearance streams (``layout``: :attr:`FrameFeatureExtractor.layout`), ``cuts`` the rows
    right after a shot cut, rows at ``fps``."""
    streams = feature_streams(rows, layout, cuts)
    return spot_appearance(streams.emotion_probs, streams.motion, streams.valid, fps, streams.spans, settings)
