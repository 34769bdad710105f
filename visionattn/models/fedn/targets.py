"""Anchor-free label assignment (ActionFormer): every step of every pyramid level is a candidate.

Coordinates: a ground-truth interval ``[onset, offset]`` of inclusive frame indices covers the
continuous span ``[onset - 0.5, offset + 0.5]`` (frame ``t`` occupies ``[t - 0.5, t + 0.5]``), so
an interval of ``n`` frames has length ``n`` and the continuous IoU equals the MEGC inclusive-frame
IoU. Step ``i`` of level ``l`` (stride ``s = 2**l``) is the point ``p = i * s`` frames.

A point is positive for an interval ``[a, b]`` with centre ``c`` when

* it lies strictly inside the centre region ``(max(a, c - r s), min(b, c + r s))`` (``r`` the
  centre-sampling radius, 1.5), and
* the interval's larger distance ``max(p - a, b - p)`` lies in the level's regression range
  ``[lo, hi]`` (frames, inclusive ends as ActionFormer);

among several qualifying intervals the shortest wins (all tied shortest ones give their type).
Targets per point: type (multi-hot over types), emotion (class index, ``-1`` on negatives), and the
distances ``((p - a) / s, (b - p) / s)``.
"""
from __future__ import annotations

import math
from typing import Dict, List, Mapping, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor


def make_points(
    lengths: Sequence[int],
    strides: Sequence[int],
    regression_ranges: Sequence[Tuple[float, float]],
    device: torch.device | str | None = None,
) -> Tensor:
    """All candidate points, level after level: ``(P, 4)`` float rows ``[position, lo, hi, stride]``.

    ``lengths[l]`` is the number of steps ``T_l`` of level ``l``; ``P = sum(T_l)``; ``position`` is in frames.
    """
    rows = []
    for length, stride, (lo, hi) in zip(lengths, strides, regression_ranges):
        pos = torch.arange(length, device=device, dtype=torch.float32) * stride
        rows.append(torch.stack([pos, pos.new_full((length,), lo), pos.new_full((length,), hi),
                                 pos.new_full((length,), float(stride))], dim=1))
    return torch.cat(rows)


def frames_to_span(segments: Tensor) -> Tensor:
    """Inclusive frame intervals ``(N, 2)`` ``[onset, offset]`` -> continuous spans ``[onset - 0.5, offset + 0.5]``."""
    return segments.float() + segments.new_tensor([-0.5, 0.5], dtype=torch.float32)


def assign_targets(
    points: Tensor, gt: Mapping[str, Tensor], center_sample_radius: float, num_types: int
) -> Dict[str, Tensor]:
    """Targets of one video.

    Args:
        points: ``(P, 4)`` from :func:`make_points`.
        gt: ``segments`` ``(N, 2)`` inclusive frames ``[onset, offset]``, ``types`` ``(N,)`` long,
            ``emotions`` ``(N,)`` long (``-1``: not labelled); ``N`` may be 0.
        center_sample_radius: ``r``, in strides.
        num_types: number of type classes.
    Returns:
        ``type`` ``(P, num_types)`` float 0/1, ``emotion`` ``(P,)`` long (``-1`` where negative or
        the interval has no emotion label),
        ``offsets`` ``(P, 2)`` float (distances to start and end in strides, 0 where negative),
        ``positive`` ``(P,)`` bool.
    """
    P = points.shape[0]
    device = points.device
    segments = gt["segments"].to(device)
    N = segments.shape[0]
    if N == 0:
        return {
            "type": points.new_zeros(P, num_types),
            "emotion": torch.full((P,), -1, dtype=torch.long, device=device),
            "offsets": points.new_zeros(P, 2),
            "positive": torch.zeros(P, dtype=torch.bool, device=device),
        }
    span = frames_to_span(segments)  # (N, 2)
    pos, lo, hi, stride = points[:, 0:1], points[:, 1:2], points[:, 2:3], points[:, 3:4]  # (P, 1)
    start, end = span[:, 0][None], span[:, 1][None]  # (1, N)
    dist = torch.stack([pos - start, end - pos], dim=-1)  # (P, N, 2)

    centre = 0.5 * (start + end)
    region_lo = torch.maximum(centre - center_sample_radius * stride, start)  # (P, N)
    region_hi = torch.minimum(centre + center_sample_radius * stride, end)
    in_centre = (pos > region_lo) & (pos < region_hi)
    max_dist = dist.max(dim=-1).values
    in_range = (max_dist >= lo) & (max_dist <= hi)

    lengths = (end - start).expand(P, N).masked_fill(~(in_centre & in_range), math.inf)
    min_len, best = lengths.min(dim=1)  # (P,)
    positive = torch.isfinite(min_len)
    # ActionFormer's tie rule: every interval as short as the shortest gives its label.
    tied = (lengths <= min_len[:, None] + 1e-3) & torch.isfinite(lengths)
    type_target = (tied.float() @ F.one_hot(gt["types"].to(device), num_types).float()).clamp(max=1.0)

    emotion = gt["emotions"].to(device)[best].masked_fill(~positive, -1)
    offsets = dist[torch.arange(P, device=device), best] / stride
    offsets = offsets * positive[:, None]
    return {"type": type_target, "emotion": emotion, "offsets": offsets, "positive": positive}


def assign_batch(
    points: Tensor, gt_list: Sequence[Mapping[str, Tensor]], center_sample_radius: float, num_types: int
) -> Dict[str, Tensor]:
    """:func:`assign_targets` for each video, stacked: every value gains a leading batch dim ``B``."""
    per_video: List[Dict[str, Tensor]] = [
        assign_targets(points, gt, center_sample_radius, num_types) for gt in gt_list
    ]
    return {key: torch.stack([t[key] for t in per_video]) for key in per_video[0]}
