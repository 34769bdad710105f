"""Long sequences through FEDN in overlapping windows, in constant memory.

Features arrive in chunks; every ``window`` steps the temporal model runs on the latest window,
and the next window starts ``window - overlap`` steps later. Each window owns a *core*: the
steps more than ``overlap / 2`` from its inner borders (the first window's core starts at 0, the
last one's ends at the end). A detection is kept only by the window whose core holds its centre,
so an expression that straddles a border is reported once, whole, by the window that sees both
of its ends; ``overlap`` should exceed the longest expression (macro ones last a few seconds).
A final merge removes the rare pair of same-type detections from different windows that still
overlap (IoU above ``merge_iou``); within a window the model's own NMS has already decided.

The stitcher keeps every scored candidate (``candidates``) before any threshold, so that
:func:`select` can apply other ``thresholds`` later without running the model again.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Sequence, Union

import numpy as np
import torch
from torch import Tensor

from ..evaluation.intervals import iou  # inclusive-frame IoU; needs only .onset/.offset



@dataclass(frozen=True)
class StepDetection:
    """A detection in model steps (inclusive), with its type and emotion indices and score."""

    onset: int
    offset: int
    type: int
    emotion: int
    score: float
    window: int = 0

    @property
    def length(self) -> int:
        return self.offset - self.onset + 1


Predict = Callable[[Tensor], dict]
"""features ``(T, D)`` -> one of :meth:`FEDN.predict`'s dicts (``onset``, ``offset``, ...)."""


class WindowStitcher:
    """Feed per-step features with :meth:`push`, call :meth:`finish`, read the detections.

    Memory holds at most ``window`` feature rows, whatever the sequence length.

    Args:
        predict: the temporal model on one window.
        window, overlap: window length and the steps neighbouring windows share.
        thresholds: the score a detection must reach: one value for every type, or one per
            type index.
        merge_iou: same-type detections of different windows overlapping more are merged.
    """

    def __init__(self, predict: Predict, window: int, overlap: int,
                 thresholds: Union[float, Sequence[float]] = 0.0, merge_iou: float = 0.5):
        if window < 2 or not 0 <= overlap < window:
            raise ValueError(f"need window >= 2 and 0 <= overlap < window, got {window}, {overlap}")
        self.predict, self.window, self.overlap = predict, window, overlap
        self.thresholds = thresholds
        self.merge_iou = merge_iou
        self._rows: List[np.ndarray] = []
        self._buffered = 0
        self._start = 0          # step index of the first buffered row
        self._core_from = 0      # steps before this belong to an earlier window's core
        self.candidates: List[StepDetection] = []  # every detection in its window's core, any score
        self.windows_run = 0

    def push(self, features: np.ndarray) -> None:
        """Append ``(k, D)`` feature rows (the next ``k`` steps)."""
        self._rows.append(np.asarray(features, dtype=np.float32))
        self._buffered += len(features)
        while self._buffered >= self.window:
            self._run(final=False)

    def finish(self) -> List[StepDetection]:
        """Run the last (possibly shorter) window and return the merged detections at or above
        their thresholds, by score (every candidate stays in ``candidates``)."""
        if self._buffered > 0 and self._start + self._buffered > self._core_from:
            self._run(final=True)
        return select(self.candidates, self.thresholds, self.merge_iou)

    def _run(self, final: bool) -> None:
        block = np.concatenate(self._rows) if len(self._rows) > 1 else self._rows[0]
        n = len(block) if final else self.window
        pred = self.predict(torch.from_numpy(block[:n]))
        core_to = self._start + n if final else self._start + self.window - self.overlap // 2
        for on, off, t, e, s in zip(pred["onset"].tolist(), pred["offset"].tolist(), pred["type"].tolist(),
                                    pred["emotion"].tolist(), pred["score"].tolist()):
            centre = self._start + (on + off) / 2
            if self._core_from <= centre < core_to:
                self.candidates.append(
                    StepDetection(self._start + on, self._start + off, t, e, float(s), self.windows_run))
        self._core_from = core_to
        self.windows_run += 1
        advance = self.window - self.overlap
        rest = block[advance:] if not final else block[:0]
        self._start += advance if not final else n
        self._rows = [rest] if len(rest) else []
        self._buffered = len(rest)


def select(candidates: Sequence[StepDetection], thresholds: Union[float, Sequence[float]] = 0.0,
           merge_iou: float = 0.5) -> List[StepDetection]:
    """The candidates at or above their type's threshold, by score, less the lower of any two
    same-type detections from different windows that overlap by IoU above ``merge_iou``.

    Args:
        candidates: a :class:`WindowStitcher`'s ``candidates``.
        thresholds: one value for every type, or one per type index.
    """
    per_type = isinstance(thresholds, (tuple, list))
    kept: List[StepDetection] = []
    for d in sorted(candidates, key=lambda d: -d.score):
        if d.score < (thresholds[d.type] if per_type else thresholds):
            continue
        if not any(k.type == d.type and k.window != d.window and iou(k, d) > merge_iou for k in kept):
            kept.append(d)
    return kept
