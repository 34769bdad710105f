"""Training-free expression spotting on the facial motion stream (``visionattn detect --method flow``).

Per-region displacement (the motion stream summed over runs of usable frames), contrasted with
both flanks at a ladder of expression durations and judged against the shot's own noise level;
intervals where the displacement follows the apex's pattern; type from the duration, emotion
from the appearance network near the apex. A pure function of per-frame arrays, in the line of
the MEGC baselines and the ROI optical-flow spotter of Zhao et al. (ACM MM 2022); nothing learnt.
The derivation and the argument for each default: ``docs/flow_spotter.md``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..data.annotations import EMOTIONS4
from ..features.motion import DEFAULT_INTERVAL_S, REFERENCE_REGION, REGION_NAMES, STATS, motion_lag
from ..models.mini_xception import FER_CLASSES
from ..features.emotions import fer_to_megc
from ..utils import UserError
from .interval import SpottedInterval
from .streams import feature_streams

__all__ = ["FlowInterval", "FlowSpotResult", "FlowSpotterSettings", "spot_flow"]

_MAD_TO_SD = 1.4826  # sd of a normal distribution = 1.4826 * its median absolute deviation
_N_STATS = len(STATS)
_NOSE = REGION_NAMES.index(REFERENCE_REGION)

Spans = Union[np.ndarray, Sequence[Tuple[int, int]], None]


@dataclass
class FlowSpotterSettings:
    """Every parameter of :func:`spot_flow`. Durations in seconds, amplitudes in % IOD, levels in
    noise units (robust standard deviations of the video's own signal)."""

    interval_s: float = DEFAULT_INTERVAL_S
    """The motion stream's lag in seconds (must be the one the features were made with)."""
    regions: Tuple[str, ...] = ("right_brow", "left_brow", "right_mouth_corner", "left_mouth_corner", "mouth", "chin")
    """Regions whose displacement counts (eyes out: blinks; nose out: it is the head reference)."""
    max_duration_s: float = 4.0
    """Longest expression (macro-expressions of CAS(ME)^2 / SAMM-LV last up to a few seconds):
    the longest rung of the scale ladder; longer intervals are dropped as lasting changes."""
    min_duration_s: float = 0.25
    """Shortest interval kept, just above the lag (0.2 s): a one-frame glitch of the crop (a
    landmark jump) is a pulse exactly one lag long in the summed displacement, while the shortest
    micro-expression (0.3 s, 9 frames at 30 fps) is found at 0.3 s or more."""
    micro_max_s: float = 0.5
    """MEGC boundary: micro when the duration is at most this (17 frames at 30 fps is 0.57 s;
    the datasets' micro-expressions span 9-17 frames, the reviewer's rule is 0.5 s)."""
    peak_k: float = 5.0
    """Apex threshold on the energy. Gaussian noise exceeds 5 sd in one region with probability
    exp(-12.5) = 4e-6 per independent sample (none in 50 simulated minutes, see the tests)."""
    edge_k: float = 2.0
    """Onset / offset: the projection on the apex pattern falls below this many sd..."""
    edge_fraction: float = 0.1
    """...or below this fraction of its apex value, whichever is higher."""
    min_noise: float = 0.05
    """Floor of every noise estimate, % IOD (Farneback's own noise on clean 112 px crops is about
    0.03 % IOD, see motion.py)."""
    merge_gap_s: float = 0.1
    """Intervals separated by at most this are one expression (when the union is not too long)."""
    head_k: float = 5.0
    """Head motion: the nose's raw flow exceeds this many of its own robust sd..."""
    head_min: float = 2.0
    """...and this many % IOD (0.7 px on a 112 px crop: above landmark-driven alignment jitter)."""
    head_pad_s: float = 0.1
    """Frames this close to head motion are ignored too (flow blurs its start and end)."""
    emotion_window_s: float = 0.2
    """Emotion: probabilities averaged over this window centred on the apex."""
    emotion_baseline: bool = True
    """Subtract the span's resting probabilities (frames outside the detected intervals)."""
    min_emotion_gain: float = 0.05
    """With a baseline: the winning class must gain at least this much posterior, else others."""
    max_bridge_s: float = 0.2
    """Invalid stretches inside a face span up to this long (a dropped landmark fit makes two
    holes one lag apart) are bridged: the motion there counts as zero and no interval includes
    them. Longer ones end the run: the neutral is not carried across."""
    span_noise_min_s: float = 10.0
    """A face span (one face, one shot) with at least this many usable seconds gets its own noise
    level; shorter ones use the whole video's (too few frames for a robust median of their own)."""
    scale_ratio: float = 2 ** 0.5
    """Ratio of successive expression durations on the ladder of contrast scales (9 rungs from
    0.25 to 4 s); a movement between two rungs is seen at nearly full size by the longer one."""

    def settings(self) -> Dict[str, Any]:
        """JSON-ready, for records."""
        out = asdict(self)
        out["regions"] = list(self.regions)
        return {"method": "flow", "version": 1, **out}

    def validate(self) -> None:
        """Raise :class:`UserError` naming the first unusable setting."""
        positive = ("interval_s", "max_duration_s", "micro_max_s", "peak_k", "min_noise", "head_k",
                    "emotion_window_s")
        non_negative = ("min_duration_s", "edge_k", "merge_gap_s", "head_min", "head_pad_s", "min_emotion_gain",
                        "max_bridge_s", "span_noise_min_s")
        for name in positive:
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise UserError(f"{name}: must be a positive number, got {value!r}")
        for name in non_negative:
            value = getattr(self, name)
            if not (np.isfinite(value) and value >= 0):
                raise UserError(f"{name}: must be a number >= 0, got {value!r}")
        if not (np.isfinite(self.scale_ratio) and self.scale_ratio > 1):
            raise UserError(f"scale_ratio: must be a number > 1, got {self.scale_ratio!r}")
        if not 0 <= self.edge_fraction < 1:
            raise UserError(f"edge_fraction: must lie in [0, 1), got {self.edge_fraction!r}")
        if self.edge_k > self.peak_k:
            raise UserError(f"edge_k: must not exceed peak_k ({self.peak_k}), got {self.edge_k!r}")
        if self.min_duration_s > self.max_duration_s:
            raise UserError(f"min_duration_s: must not exceed max_duration_s ({self.max_duration_s}), got {self.min_duration_s!r}")
        if not self.regions:
            raise UserError("regions: name at least one region")
        for name in self.regions:
            if name not in REGION_NAMES or name == REFERENCE_REGION:
                allowed = ", ".join(r for r in REGION_NAMES if r != REFERENCE_REGION)
                raise UserError(f"regions: unknown or unusable region {name!r}; choose from {allowed}")


@dataclass(frozen=True)
class FlowInterval(SpottedInterval):
    """A :class:`~.interval.SpottedInterval` (``score`` in [0.5, 1), ``apex`` the frame of the
    energy's peak) with ``peak``: the energy there, in noise units."""

    peak: float = 0.0


@dataclass
class FlowSpotResult:
    """What :func:`spot_flow` found and the signal it decided on.

    ``energy``: ``(T,)`` float32, the lag-corrected energy in noise units (0 on unusable frames);
    ``threshold``: the apex level on that scale (``peak_k``); ``noise``: ``{region: (sd_dx,
    sd_dy)}`` in % IOD, the robust sd of the one-flank displacement difference at the finest
    scale (the shortest expression) over the whole video (a long span is judged against its own,
    see step 4 of the module doc); ``usable``: ``(T,)``
    bool, the frames the decision could use; ``head_motion``: ``(T,)`` bool, frames ignored as
    head motion; ``lag``: frames.
    """

    intervals: List[FlowInterval]
    energy: np.ndarray
    threshold: float
    noise: Dict[str, Tuple[float, float]]
    usable: np.ndarray
    head_motion: np.ndarray
    lag: int
    settings: Dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready summary (no per-frame arrays)."""
        return {
            "intervals": [asdict(x) for x in self.intervals],
            "threshold": self.threshold,
            "noise": {k: list(v) for k, v in self.noise.items()},
            "lag": self.lag,
            "usable_frames": int(self.usable.sum()),
            "head_motion_frames": int(self.head_motion.sum()),
            "settings": self.settings,
        }


def _true_runs(mask: np.ndarray) -> List[Tuple[int, int]]:
    """Inclusive ``(start, end)`` of each maximal run of True."""
    padded = np.concatenate([[False], mask, [False]])
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return [(int(s), int(e) - 1) for s, e in zip(edges[::2], edges[1::2])]


def _face_spans(segments_ok: Spans, n: int) -> List[Tuple[int, int]]:
    if segments_ok is None:
        return [(0, n - 1)] if n else []
    if isinstance(segments_ok, np.ndarray) and segments_ok.dtype == bool:
        if segments_ok.shape != (n,):
            raise ValueError(f"segments_ok: a mask must have shape ({n},), got {segments_ok.shape}")
        return _true_runs(segments_ok)
    spans = []
    for item in segments_ok:
        start, end = (int(v) for v in item)
        if not 0 <= start <= end < n:
            raise ValueError(f"segments_ok: span ({start}, {end}) is not inside frames 0..{n - 1}")
        spans.append((start, end))
    spans.sort()
    for (_, e0), (s1, _) in zip(spans, spans[1:]):
        if s1 <= e0:
            raise ValueError(f"segments_ok: spans overlap at frame {s1}")
    return spans


def _usable_runs(valid: np.ndarray, spans: List[Tuple[int, int]], lag: int, bridge: int) -> List[Tuple[int, int, int]]:
    """``(start, end, span index)`` of the runs: stretches of one span, from its frame ``lag`` on
    (the first whose reference frame ``t - lag`` is in the span), that start and end on valid
    frames and contain no invalid stretch longer than ``bridge`` frames."""
    runs = []
    for k, (s, e) in enumerate(spans):
        first = s + lag
        if first > e:
            continue
        mask = valid[first:e + 1].copy()
        pieces = _true_runs(mask)
        for (_, b0), (a1, _) in zip(pieces, pieces[1:]):
            if a1 - b0 - 1 <= bridge:
                mask[b0 + 1:a1] = True
        for a, b in _true_runs(mask):
            runs.append((first + a, first + b, k))
    return runs


def _robust_sd(values: np.ndarray, floor: float) -> np.ndarray:
    """Per column of ``(n, C)`` ``values``: 1.4826 * median absolute deviation, at least ``floor``."""
    if len(values) == 0:
        return np.full(values.shape[1:], floor)
    columns = np.ascontiguousarray(values.T)  # medians along contiguous rows are several times faster
    med = np.median(columns, axis=1, keepdims=True)
    return np.maximum(_MAD_TO_SD * np.median(np.abs(columns - med), axis=1), floor)


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    if radius <= 0 or not mask.any():
        return mask
    counts = np.convolve(mask.astype(np.int32), np.ones(2 * radius + 1, np.int32), mode="same")
    return counts > 0


def flank_offsets(settings: FlowSpotterSettings, fps: float) -> List[int]:
    """The contrast scales, in frames: for each expression duration ``D`` of the geometric ladder
    ``min_duration_s, min_duration_s * scale_ratio, ..., max_duration_s``, the flank offset
    ``round((D + interval_s) / 2 * fps)`` that reaches just past such an expression (``D / 2`` from
    its middle) and past the lag's box smoothing (``interval_s / 2``)."""
    durations = [settings.min_duration_s]
    while durations[-1] * settings.scale_ratio < settings.max_duration_s:
        durations.append(durations[-1] * settings.scale_ratio)
    if durations[-1] < settings.max_duration_s:
        durations.append(settings.max_duration_s)
    return sorted({max(1, int(round((d + settings.interval_s) / 2 * fps))) for d in durations})


def _contrast(x: np.ndarray, h: int, stride: int) -> Tuple[np.ndarray, np.ndarray]:
    """Both-flank contrast of one run's displacement ``x`` ``(n, C)`` at offset ``h``: where
    ``x(t) - x(t - h)`` and ``x(t) - x(t + h)`` agree in sign, the smaller of the two (signed),
    else 0; and the one-flank differences of every ``stride``-th frame, whose spread is the noise
    level. Flanks beyond the run are its end frames."""
    n = len(x)
    h = min(h, n - 1)
    left = x.copy()
    left[h:] -= x[:n - h]
    left[:h] -= x[0]
    right = x.copy()
    right[:n - h] -= x[h:]
    right[n - h:] -= x[-1]
    both = np.minimum(np.abs(left), np.abs(right))
    both *= np.sign(left)
    both[left * right <= 0] = 0.0
    return both, np.concatenate([left[::stride], right[::stride]])


def spot_flow(
    motion: np.ndarray,
    valid: np.ndarray,
    fps: float,
    segments_ok: Spans = None,
    emotion_probs: Optional[np.ndarray] = None,
    settings: Optional[FlowSpotterSettings] = None,
) -> FlowSpotResult:
    """Spot expressions in one video from its motion features (see the module doc).

    ``motion``: ``(T, 27)`` float, the motion stream's features (% IOD); ``valid``: ``(T,)`` bool;
    ``fps``: the video's frame rate; ``segments_ok``: where one face was tracked continuously
    with no cut inside, as a ``(T,)`` bool mask (each run of True is one span: two tracks that
    touch with no frame between them must be given as a list instead) or a list of inclusive
    ``(start, end)`` frame spans; None means the whole video is one span (``valid`` still breaks
    it at cuts and missing faces). ``emotion_probs``: ``(T, 7)`` FER posteriors (NaN where no
    face) or None. Returns intervals in frame indices of the input (inclusive), none containing
    an unusable frame or crossing from one span to another.
    """
    s = settings or FlowSpotterSettings()
    s.validate()
    if not (np.isfinite(fps) and fps > 0):
        raise UserError(f"fps: must be a positive number, got {fps!r}")
    motion = np.asarray(motion, dtype=np.float64)
    n = len(motion)
    width = len(REGION_NAMES) * _N_STATS
    if motion.ndim != 2 or motion.shape[1] != width:
        raise ValueError(f"motion: expected shape (T, {width}), got {motion.shape}")
    valid = np.asarray(valid, dtype=bool)
    if valid.shape != (n,):
        raise ValueError(f"valid: expected shape ({n},), got {valid.shape}")
    if emotion_probs is not None:
        emotion_probs = np.asarray(emotion_probs, dtype=np.float64)
        if emotion_probs.shape != (n, len(FER_CLASSES)):
            raise ValueError(f"emotion_probs: expected shape ({n}, {len(FER_CLASSES)}), got {emotion_probs.shape}")

    lag = motion_lag(s.interval_s, fps)  # the one place the spotter derives the lag
    spans = _face_spans(segments_ok, n)
    valid = valid & np.isfinite(motion).all(axis=1)
    runs = _usable_runs(valid, spans, lag, int(round(s.max_bridge_s * fps)))
    usable = np.zeros(n, dtype=bool)
    for a, b, _ in runs:
        usable[a:b + 1] = True
    usable &= valid  # bridged frames belong to a run but are never used or reported

    # Spans long enough for noise levels of their own (step 4 of the module doc).
    span_of = np.full(n, -1, dtype=np.int64)
    for a, b, span in runs:
        span_of[a:b + 1] = span
    own = {span for span in set(span_of[usable].tolist())
           if np.count_nonzero(usable & (span_of == span)) >= s.span_noise_min_s * fps}

    # Head motion: the nose's raw flow against its own noise (over usable frames only).
    nose = motion[:, _NOSE * _N_STATS:_NOSE * _N_STATS + 2]

    def head_level(frames: np.ndarray) -> float:
        return max(s.head_k * float(_robust_sd(nose[frames].reshape(-1, 1), s.min_noise)[0]), s.head_min)

    level = np.full(n, head_level(usable))
    for span in own:
        level[span_of == span] = head_level(usable & (span_of == span))
    head = usable & (np.hypot(nose[:, 0], nose[:, 1]) > level)
    head = _dilate(head, int(round(s.head_pad_s * fps))) & usable

    # Displacement of the used components (dx, dy of each region), (T, 2R), lag-corrected.
    cols = [REGION_NAMES.index(r) * _N_STATS + c for r in s.regions for c in (0, 1)]
    g = motion[:, cols]
    g[head | ~usable] = 0.0
    shift = (lag - 1) // 2
    x = np.zeros(g.shape, dtype=np.float32)
    for a, b, _ in runs:
        run = np.cumsum(g[a:b + 1], axis=0) / lag
        x[a:b + 1] = np.concatenate([run[shift:], np.repeat(run[-1:], min(shift, len(run)), axis=0)])

    offsets = flank_offsets(s, fps)
    energy = np.zeros(n, dtype=np.float32)
    best = np.zeros(n, dtype=np.int64)
    sds = np.zeros((len(offsets), len(cols)), dtype=np.float32)  # the whole video's
    span_sds = {span: np.zeros_like(sds) for span in own}
    # The noise level is a median over the video: 20 000 evenly spread frames pin it to about 1 %.
    stride = max(1, int(usable.sum()) // 20_000)
    for k, h in enumerate(offsets):
        c = np.zeros_like(x)
        flanks = [np.zeros((0, len(cols)))]  # the whole video's
        span_flanks: Dict[int, List[np.ndarray]] = {}
        for a, b, span in runs:
            c[a:b + 1], one_sided = _contrast(x[a:b + 1], h, stride)
            flanks.append(one_sided)
            span_flanks.setdefault(span, []).append(one_sided)
        # The noise is the spread of the one-flank difference (the two-flank contrast is mostly
        # exact zeros under noise): the contrast exceeds k of these only if both flanks do.
        sds[k] = _robust_sd(np.concatenate(flanks), s.min_noise)
        for span in own:
            span_sds[span][k] = _robust_sd(np.concatenate(span_flanks[span]), s.min_noise)
        for a, b, span in runs:
            c[a:b + 1] /= span_sds[span][k] if span in own else sds[k]
        e = np.sqrt(c[:, 0::2] ** 2 + c[:, 1::2] ** 2).max(axis=1)
        better = e > energy
        energy[better] = e[better]
        best[better] = k
    energy[~usable] = 0.0

    run_sds = [span_sds[span] if span in own else sds for _, _, span in runs]
    raw = _find_intervals(x, energy, best, offsets, run_sds, runs, usable, fps, s)
    intervals = [
        FlowInterval(on, off, "micro" if (off - on + 1) / fps <= s.micro_max_s + 1e-9 else "macro",
                     "others", float(peak / (peak + s.peak_k)), apex, float(peak))
        for on, off, apex, peak in raw
    ]
    if emotion_probs is not None and intervals:
        intervals = _label_emotions(intervals, emotion_probs, spans, fps, s)
    finest = sds[0]
    noise = {r: (float(finest[2 * i]), float(finest[2 * i + 1])) for i, r in enumerate(s.regions)}
    return FlowSpotResult(intervals, energy.astype(np.float32), float(s.peak_k), noise, usable, head, lag, s.settings())


def _find_intervals(x: np.ndarray, energy: np.ndarray, best: np.ndarray, offsets: List[int],
                    run_sds: List[np.ndarray], runs: List[Tuple[int, int, int]], usable: np.ndarray, fps: float,
                    s: FlowSpotterSettings) -> List[Tuple[int, int, int, float]]:
    """``(onset, offset, apex, peak)`` of every kept interval, in time order; ``run_sds[j]``: the
    noise levels ``(scales, components)`` that run ``j`` was scaled by."""
    max_len = s.max_duration_s * fps
    min_len = s.min_duration_s * fps
    gap = int(round(s.merge_gap_s * fps))
    out: List[Tuple[int, int, int, float]] = []
    for (a, b, _), sds in zip(runs, run_sds):
        e = energy[a:b + 1]
        candidates = np.flatnonzero(e >= s.peak_k)
        if not len(candidates):
            continue
        xr = x[a:b + 1]
        taken = ~usable[a:b + 1]  # bridged frames stop an interval like one already taken
        found: List[List[float]] = []
        for i in candidates[np.argsort(-e[candidates], kind="stable")]:
            if taken[i]:
                continue
            k = int(best[a + i])
            h = offsets[k]
            lo, hi = max(0, i - h), min(len(e) - 1, i + h)
            # The neutral face: the straight line between the two flanks.
            w = np.linspace(0.0, 1.0, hi - lo + 1)[:, None]
            z = (xr[lo:hi + 1] - ((1 - w) * xr[lo] + w * xr[hi])) / sds[k]
            norm = np.linalg.norm(z[i - lo])
            if norm == 0:
                continue
            course = z @ (z[i - lo] / norm)
            level = max(s.edge_k, s.edge_fraction * course[i - lo])
            stop = (course < level) | taken[lo:hi + 1]
            left = np.flatnonzero(stop[:i - lo])
            right = np.flatnonzero(stop[i - lo + 1:])
            on = lo + (int(left[-1]) + 1 if len(left) else 0)
            off = i + (int(right[0]) if len(right) else hi - i)
            taken[on:off + 1] = True
            found.append([on, off, int(i), float(e[i])])
        found.sort()
        merged: List[List[float]] = []
        for item in found:
            if (merged and item[0] - merged[-1][1] - 1 <= gap and item[1] - merged[-1][0] + 1 <= max_len
                    and usable[a + int(merged[-1][1]) + 1:a + int(item[0])].all()):
                last = merged[-1]
                last[1] = item[1]
                if item[3] > last[3]:
                    last[2], last[3] = item[2], item[3]
            else:
                merged.append(list(item))
        for on, off, apex, peak in merged:
            length = off - on + 1
            if min_len - 1e-9 <= length <= max_len + 1e-9:
                out.append((a + int(on), a + int(off), a + int(apex), float(peak)))
    return out


def _label_emotions(intervals: List[FlowInterval], probs: np.ndarray, spans: List[Tuple[int, int]], fps: float,
                    s: FlowSpotterSettings) -> List[FlowInterval]:
    finite = np.isfinite(probs).all(axis=1)
    inside = np.zeros(len(probs), dtype=bool)
    for x in intervals:
        inside[x.onset:x.offset + 1] = True
    half = int(round(s.emotion_window_s * fps / 2))
    out = []
    for x in intervals:
        lo, hi = max(x.onset, x.apex - half), min(x.offset, x.apex + half)
        rows = finite[lo:hi + 1]
        if not rows.any():
            out.append(x)
            continue
        apex4 = fer_to_megc(probs[lo:hi + 1][rows].mean(axis=0), FER_CLASSES)
        emotion = EMOTIONS4[int(np.argmax(apex4))]
        if s.emotion_baseline:
            span = next(((a, b) for a, b in spans if a <= x.apex <= b), None)
            rest = np.zeros(len(probs), dtype=bool)
            if span is not None:
                rest[span[0]:span[1] + 1] = True
            rest &= finite & ~inside
            if rest.any():
                gain = apex4 - fer_to_megc(probs[rest].mean(axis=0), FER_CLASSES)
                best = int(np.argmax(gain))
                emotion = EMOTIONS4[best] if gain[best] >= s.min_emotion_gain else "others"
        out.append(FlowInterval(x.onset, x.offset, x.type, emotion, x.score, x.apex, x.peak))
    return out


def spot_flow_rows(rows: np.ndarray, layout: Dict[str, Tuple[int, int]], cuts: Sequence[int], fps: float,
                   settings: Optional[FlowSpotterSettings] = None) -> "FlowSpotResult":
    """The flow spotter (``settings``, default: the defaults) on feature rows ``(T, D)`` of the landmark front end
    with the motion and appearance streams (``layout``: :attr:`FrameFeatureExtractor.layout`),
    ``cuts`` the rows right after a shot cut, rows at ``fps``: a
    :class:`~visionattn.spotting.flow.FlowSpotResult` in rows."""
    streams = feature_streams(rows, layout, cuts)
    return spot_flow(streams.motion, streams.valid, fps, segments_ok=streams.spans,
                     emotion_probs=streams.emotion_probs, settings=settings)
