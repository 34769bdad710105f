"""Detection mAP: an interval counts only if both its frames and its emotion are right.

The temporal action-localisation convention (ActivityNet, ActionFormer): per emotion class
and tIoU threshold, predictions of that class across the dataset are ranked by score, each
is a true positive if it claims a still-unmatched truth of its class and video, and AP is
the area under the interpolated precision-recall curve (VOC all-point). IoU is the same
inclusive-frame IoU as for spotting; the expression type plays no part.
"""
from __future__ import annotations

from typing import Dict, List, Sequence

from .intervals import Interval, Threshold, exact_threshold, group_by_video, meets, overlap
from .recognition import gt_classes

THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7)


def threshold_key(threshold: Threshold) -> str:
    """JSON key of a threshold: ``0.3 -> "0.3"``."""
    return format(float(threshold), "g")


def average_precision(hits: Sequence[bool], n_truths: int) -> float:
    """VOC all-point AP of a ranked list of hit/miss flags against ``n_truths`` truths.

    Precision is made non-increasing from the right (the envelope), then summed over the
    steps in recall: ``sum((r_i - r_{i-1}) * p_i)``. Truths never found cap recall below 1.
    """
    if n_truths == 0 or not hits:
        return 0.0
    precision: List[float] = []
    recall: List[float] = []
    tp = 0
    for rank, hit in enumerate(hits, start=1):
        tp += hit
        precision.append(tp / rank)
        recall.append(tp / n_truths)
    for i in range(len(precision) - 2, -1, -1):
        precision[i] = max(precision[i], precision[i + 1])
    ap, prev = 0.0, 0.0
    for p, r in zip(precision, recall):
        ap += (r - prev) * p
        prev = r
    return ap


def ranked_hits(truths: Sequence[Interval], preds: Sequence[Interval], threshold: Threshold) -> List[bool]:
    """Hit/miss of each prediction in score order (descending; ties keep the given order).

    A prediction claims the unmatched truth of its video with the highest IoU (the first
    such truth on a tie) if that IoU reaches ``threshold``.
    """
    t = exact_threshold(threshold)
    by_video = group_by_video(truths)
    taken = set()
    hits = []
    for pred in sorted(preds, key=lambda x: -x.score):
        best, best_overlap = None, (0, 1)
        for g in by_video.get(pred.key, ()):
            if g in taken:
                continue
            inter, union = overlap(pred, truths[g])
            # Compare inter/union fractions by cross-multiplying: exact, and a tie keeps the first.
            if meets(inter, union, t) and inter * best_overlap[1] > best_overlap[0] * union:
                best, best_overlap = g, (inter, union)
        if best is not None:
            taken.add(best)
        hits.append(best is not None)
    return hits


def detection_map(gt: Sequence[Interval], pred: Sequence[Interval],
                  thresholds: Sequence[Threshold] = THRESHOLDS) -> dict:
    """mAP over the emotion classes present in ``gt``, at each threshold and on average.

    Returns ``{"thresholds": [...], "mean": {"0.3": mAP, ...}, "average": mean of those,
    "at_0.5": mAP at 0.5 (when 0.5 is a threshold), "per_class": {emotion: {"0.3": AP, ...}}}``.
    Predictions of an emotion absent from ``gt`` are ignored; a class without predictions has AP 0.
    """
    classes = gt_classes(gt)
    per_class: Dict[str, Dict[str, float]] = {}
    for c in classes:
        truths = [x for x in gt if x.emotion == c]
        preds = [x for x in pred if x.emotion == c]
        per_class[c] = {threshold_key(t): average_precision(ranked_hits(truths, preds, t), len(truths))
                        for t in thresholds}
    keys = [threshold_key(t) for t in thresholds]
    mean = {k: sum(per_class[c][k] for c in classes) / len(classes) if classes else 0.0 for k in keys}
    out = {
        "thresholds": [float(t) for t in thresholds],
        "mean": mean,
        "average": sum(mean.values()) / len(mean) if mean else 0.0,
    }
    if "0.5" in mean:
        out["at_0.5"] = mean["0.5"]
    out["per_class"] = per_class
    return out
