"""MEGC spotting: true/false positives, false negatives and F1, per expression type and overall.

Counts are pooled over the whole dataset (summed over videos, never averaged per video), and
``overall`` is the sum of the micro and macro counts, as in the MEGC spotting challenges.
When either side has no types (a file without a type column, as the official STRS layout),
there are no per-type rows: ``overall`` matches all predictions against all truths.
"""
from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

from .intervals import TYPES, Interval, Threshold, greedy_match, is_typed


def _ratio(num: int, den: int) -> float:
    return num / den if den else 0.0


def prf(tp: int, fp: int, fn: int) -> Dict[str, float]:
    """``{"tp", "fp", "fn", "precision", "recall", "f1"}``; a ratio with a zero denominator is 0.0."""
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, tp + fn)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"tp": tp, "fp": fp, "fn": fn, "precision": precision, "recall": recall, "f1": f1}


def spotting_matches(gt: Sequence[Interval], pred: Sequence[Interval],
                     iou: Threshold = 0.5) -> Dict[str, List[Tuple[int, int]]]:
    """Per type, the matched ``(pred_index, gt_index)`` pairs (indices into ``pred`` and ``gt``).

    A prediction of one type can only match a truth of the same type; within a type the
    matching is :func:`~visionattn.evaluation.intervals.greedy_match` in file order. Untyped
    input gives ``{"overall": pairs}`` of one matching over everything.
    """
    if not is_typed(gt, pred):
        return {"overall": greedy_match(gt, pred, iou)}
    out = {}
    for kind in TYPES:
        g_idx = [i for i, x in enumerate(gt) if x.type == kind]
        p_idx = [i for i, x in enumerate(pred) if x.type == kind]
        pairs = greedy_match([gt[i] for i in g_idx], [pred[i] for i in p_idx], iou)
        out[kind] = [(p_idx[p], g_idx[g]) for p, g in pairs]
    return out


def spotting_scores(gt: Sequence[Interval], pred: Sequence[Interval],
                    iou: Threshold = 0.5) -> Dict[str, Dict[str, float]]:
    """``{"micro": prf, "macro": prf, "overall": prf}`` with ``prf`` as returned by :func:`prf`;
    only ``{"overall": prf}`` for untyped input."""
    matches = spotting_matches(gt, pred, iou)
    if "overall" in matches:
        tp = len(matches["overall"])
        return {"overall": prf(tp, len(pred) - tp, len(gt) - tp)}
    out = {}
    for kind in TYPES:
        tp = len(matches[kind])
        n_pred = sum(x.type == kind for x in pred)
        n_gt = sum(x.type == kind for x in gt)
        out[kind] = prf(tp, n_pred - tp, n_gt - tp)
    out["overall"] = prf(*(sum(out[k][c] for k in TYPES) for c in ("tp", "fp", "fn")))
    return out
