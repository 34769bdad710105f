"""From per-point outputs to expression intervals: decode, pre-NMS top-k, (Soft-)NMS, nested suppression.

Pure torch.

Decoding uses the continuous convention of :mod:`.targets`: the point ``p`` (frames) of a level
with stride ``s`` and distances ``(d_s, d_e)`` gives the span ``[p - d_s s, p + d_e s]``, clipped
to the video ``[-0.5, L - 0.5]``; it is reported as inclusive frames
``onset = round(start + 0.5)``, ``offset = round(end - 0.5)`` (clipped to ``[0, L - 1]``,
``offset >= onset``). IoUs for NMS are computed on the continuous spans.
"""
from __future__ import annotations

from typing import Dict, List, Mapping, Sequence, Tuple

import torch
from torch import Tensor

from .config import FEDNConfig


def interval_iou(segment: Tensor, segments: Tensor) -> Tensor:
    """IoU of one span ``(2,)`` with each of ``(M, 2)`` spans -> ``(M,)``; continuous ``[start, end]``."""
    inter = (torch.minimum(segment[1], segments[:, 1]) - torch.maximum(segment[0], segments[:, 0])).clamp(min=0)
    union = (segment[1] - segment[0]) + (segments[:, 1] - segments[:, 0]) - inter
    return inter / union.clamp(min=1e-8)


def soft_nms(
    segments: Tensor, scores: Tensor, sigma: float = 0.5, score_floor: float = 0.001, max_detections: int = 200
) -> Tuple[Tensor, Tensor]:
    """Gaussian Soft-NMS: repeatedly keep the best span and decay each other score by ``exp(-IoU**2 / sigma)``.

    Args:
        segments: ``(N, 2)`` spans; scores: ``(N,)``.
    Returns:
        ``(keep, new_scores)``: indices ``(K,)`` into the input and their decayed scores ``(K,)``,
        in descending score order. Stops at ``max_detections`` or when the best left is below
        ``score_floor`` (scores only decay, so later picks could not beat earlier ones).
    """
    scores = scores.clone()
    remaining = torch.arange(scores.numel(), device=scores.device)
    keep: List[Tensor] = []
    kept: List[Tensor] = []
    while remaining.numel() > 0 and len(keep) < max_detections:
        best = int(scores[remaining].argmax())
        idx = remaining[best]
        if scores[idx] < score_floor:
            break
        keep.append(idx)
        kept.append(scores[idx].clone())
        remaining = torch.cat([remaining[:best], remaining[best + 1:]])
        if remaining.numel() > 0:
            iou = interval_iou(segments[idx], segments[remaining])
            scores[remaining] = scores[remaining] * torch.exp(-iou.square() / sigma)
    if not keep:
        return remaining.new_zeros(0), scores.new_zeros(0)
    return torch.stack(keep), torch.stack(kept)


def hard_nms(segments: Tensor, scores: Tensor, iou_threshold: float = 0.1, max_detections: int = 200) -> Tensor:
    """Greedy NMS: keep the best span, drop every other span with IoU > ``iou_threshold`` to it.

    ``(N, 2), (N,) -> keep (K,)`` indices in descending score order.
    """
    order = scores.argsort(descending=True)
    keep: List[Tensor] = []
    while order.numel() > 0 and len(keep) < max_detections:
        idx = order[0]
        keep.append(idx)
        order = order[1:]
        if order.numel() > 0:
            order = order[interval_iou(segments[idx], segments[order]) <= iou_threshold]
    return torch.stack(keep) if keep else order.new_zeros(0)


def suppress_nested(segments: Tensor, types: Tensor, cover: float, max_iou: float = 0.5) -> Tensor:
    """Drop a detection that lies inside a higher-scoring one of another type yet is not the same event.

    A face shows one expression at a time, so a short micro detection found during a long macro
    one is a part of it (its onset or its peak), not a second expression. Two detections of
    different types that overlap as much as a MEGC match (IoU >= ``max_iou``) are the two
    readings of one event and are both kept: the per-type score thresholds decide between them.

    Args:
        segments: ``(N, 2)`` continuous spans, sorted by descending score; types: ``(N,)``.
        cover: the fraction of a detection's span that must lie inside the other one.
    Returns:
        ``(N,)`` bool, True for the detections kept (each judged against the kept ones above it).
    """
    n = segments.shape[0]
    length = (segments[:, 1] - segments[:, 0]).clamp(min=1e-8)
    inter = (torch.minimum(segments[:, None, 1], segments[None, :, 1])
             - torch.maximum(segments[:, None, 0], segments[None, :, 0])).clamp(min=0)
    iou = inter / (length[:, None] + length[None, :] - inter).clamp(min=1e-8)
    # nested[i, j]: i lies inside j, of another type, and is too short to be j's event
    nested = (inter / length[:, None] >= cover) & (iou < max_iou) & (types[:, None] != types[None, :])
    keep = torch.ones(n, dtype=torch.bool, device=segments.device)
    for i in range(1, n):
        keep[i] = not bool((nested[i, :i] & keep[:i]).any())
    return keep


def _nms(segments: Tensor, scores: Tensor, config: FEDNConfig) -> Tuple[Tensor, Tensor]:
    """The configured suppression on one class: ``(N, 2), (N,) -> (keep (K,), scores (K,))``."""
    if config.nms_method == "soft":
        return soft_nms(segments, scores, config.nms_sigma, config.score_floor, config.max_detections)
    if config.nms_method == "hard":
        keep = hard_nms(segments, scores, config.nms_iou_threshold, config.max_detections)
    else:
        keep = scores.argsort(descending=True)[: config.max_detections]
    return keep, scores[keep]


def postprocess_video(
    type_logits: Sequence[Tensor],
    emotion_logits: Sequence[Tensor],
    offsets: Sequence[Tensor],
    masks: Sequence[Tensor],
    strides: Sequence[int],
    length: int,
    config: FEDNConfig,
) -> Dict[str, Tensor]:
    """Detections of one video from its per-level outputs.

    Args:
        type_logits: per level ``(T_l, num_types)``; emotion_logits: ``(T_l, E)``;
        offsets: ``(T_l, 2)`` in strides; masks: ``(T_l,)`` bool; strides: per level.
        length: number of frames ``L`` of the video.
    Returns:
        ``onset``, ``offset`` ``(K,)`` long inclusive frames in ``[0, L - 1]``, ``type`` ``(K,)`` long
        (index into ``config.type_names``), ``emotion`` ``(K,)`` long (argmax, index into
        ``config.emotion_names``), ``score`` ``(K,)`` float; sorted by descending score.
    """
    spans, scores, types, emotions = [], [], [], []
    for t_logit, e_logit, off, mask, stride in zip(type_logits, emotion_logits, offsets, masks, strides):
        points = torch.arange(t_logit.shape[0], device=t_logit.device, dtype=off.dtype)[mask] * stride
        prob = torch.sigmoid(t_logit[mask])  # (T_v, K)
        emo_prob = torch.softmax(e_logit[mask], dim=-1)
        emo_conf, emo_label = emo_prob.max(dim=-1)
        if config.score_with_emotion:
            prob = prob * emo_conf[:, None]
        flat = prob.flatten()
        cand = (flat > config.pre_nms_threshold).nonzero().squeeze(1)
        cand = cand[flat[cand].topk(min(config.pre_nms_topk, cand.numel())).indices]
        point_idx, type_idx = cand // prob.shape[1], cand % prob.shape[1]
        d = off[mask][point_idx]
        p = points[point_idx]
        span = torch.stack([p - d[:, 0] * stride, p + d[:, 1] * stride], dim=1).clamp(-0.5, length - 0.5)
        long_enough = (span[:, 1] - span[:, 0]) >= config.min_duration
        spans.append(span[long_enough])
        scores.append(flat[cand][long_enough])
        types.append(type_idx[long_enough])
        emotions.append(emo_label[point_idx][long_enough])
    spans_t, scores_t = torch.cat(spans), torch.cat(scores)
    types_t, emotions_t = torch.cat(types), torch.cat(emotions)

    if config.nms_class_agnostic:
        keep, new_scores = _nms(spans_t, scores_t, config)
    else:
        picks = []
        for kind in types_t.unique():
            idx = (types_t == kind).nonzero().squeeze(1)
            k, s = _nms(spans_t[idx], scores_t[idx], config)
            picks.append((idx[k], s))
        keep = torch.cat([k for k, _ in picks]) if picks else types_t.new_zeros(0)
        new_scores = torch.cat([s for _, s in picks]) if picks else scores_t.new_zeros(0)
    order = new_scores.argsort(descending=True)[: config.max_detections]
    keep, new_scores = keep[order], new_scores[order]
    if config.nested_cover is not None and keep.numel() > 1:
        inside = suppress_nested(spans_t[keep], types_t[keep], config.nested_cover)
        keep, new_scores = keep[inside], new_scores[inside]

    span = spans_t[keep]
    onset = torch.round(span[:, 0] + 0.5).long().clamp(0, length - 1)
    offset = torch.maximum(torch.round(span[:, 1] - 0.5).long().clamp(0, length - 1), onset)
    return {"onset": onset, "offset": offset, "type": types_t[keep], "emotion": emotions_t[keep], "score": new_scores}


def postprocess(outputs: Mapping[str, object], config: FEDNConfig) -> List[Dict[str, Tensor]]:
    """:func:`postprocess_video` for each item of a batch of :meth:`FEDN.temporal` outputs."""
    batch = outputs["type_logits"][0].shape[0]
    results = []
    for b in range(batch):
        results.append(postprocess_video(
            [t[b] for t in outputs["type_logits"]],
            [e[b] for e in outputs["emotion_logits"]],
            [o[b] for o in outputs["offsets"]],
            [m[b] for m in outputs["masks"]],
            outputs["strides"],
            int(outputs["lengths"][b]),
            config,
        ))
    return results
