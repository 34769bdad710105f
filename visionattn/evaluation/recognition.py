"""Emotion recognition on spotted intervals: the analysis F1 and STRS (MEGC 2023-2025).

Only spotting true positives are analysed: each matched (prediction, truth) pair contributes
its (true emotion, predicted emotion). Per class one-vs-rest precision and recall are
averaged over the classes first, and F1 is taken of the two averages.
"""
from __future__ import annotations

from typing import Iterable, List, Optional, Sequence, Set, Tuple

from .intervals import Interval, Threshold, normalise_emotion
from .spotting import spotting_matches, spotting_scores


def gt_classes(gt: Sequence[Interval]) -> List[str]:
    """The emotion classes present in the ground truth, sorted; unlabelled ("") is not a class."""
    return sorted({x.emotion for x in gt if x.emotion})


def _resolve_classes(gt: Sequence[Interval], classes: Optional[Iterable[str]]) -> List[str]:
    if classes is None:
        return gt_classes(gt)
    return sorted({normalise_emotion(c) for c in classes} - {""})


def analysis_f1_from_labels(pairs: Iterable[Tuple[str, str]], classes: Iterable[str]) -> float:
    """F1 of the class-averaged precision and recall over ``(true, predicted)`` label pairs.

    Pairs whose true label is not in ``classes`` are dropped. For class c: TP = (c, c),
    FP = (not c, c), FN = (c, not c); P_c and R_c are 0 where their denominator is 0.
    With no classes the score is 0.
    """
    wanted: Set[str] = set(classes)
    if not wanted:
        return 0.0
    kept = [(t, p) for t, p in pairs if t in wanted]
    p_sum = r_sum = 0.0
    # Sorted so that the float sums, and hence the reported numbers, do not depend on set order.
    for c in sorted(wanted):
        tp = sum(t == c and p == c for t, p in kept)
        fp = sum(t != c and p == c for t, p in kept)
        fn = sum(t == c and p != c for t, p in kept)
        p_sum += tp / (tp + fp) if tp + fp else 0.0
        r_sum += tp / (tp + fn) if tp + fn else 0.0
    p_bar, r_bar = p_sum / len(wanted), r_sum / len(wanted)
    return 2 * p_bar * r_bar / (p_bar + r_bar) if p_bar + r_bar else 0.0


def analysis_f1(gt: Sequence[Interval], pred: Sequence[Interval], iou: Threshold = 0.5,
                classes: Optional[Iterable[str]] = None) -> float:
    """Analysis F1 over the spotting true positives of both types.

    ``classes`` defaults to the emotions present in ``gt``; labels compare case-insensitively.
    """
    matches = spotting_matches(gt, pred, iou)
    pairs = [(gt[g].emotion, pred[p].emotion) for kind_pairs in matches.values() for p, g in kind_pairs]
    return analysis_f1_from_labels(pairs, _resolve_classes(gt, classes))


def strs(gt: Sequence[Interval], pred: Sequence[Interval], iou: Threshold = 0.5,
         classes: Optional[Iterable[str]] = None) -> float:
    """Spot-then-recognise score: overall spotting F1 times :func:`analysis_f1`."""
    return spotting_scores(gt, pred, iou)["overall"]["f1"] * analysis_f1(gt, pred, iou, classes)
