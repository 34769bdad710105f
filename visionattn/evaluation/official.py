"""STRS as the official MEGC script (2023-2025) computes it, where that departs from the definition.

``visionattn evaluate --official-script`` uses this; the default is the definition
(:mod:`.spotting`, :mod:`.recognition`). On input where no truths of a video overlap each
other enough for one prediction to reach two of them, every subject has predictions and every
predicted video has ground truth, both give the same numbers (the official sample: STRS
0.38623 either way). The departures, each counted in the notes of :func:`official_scores`:

1. Scope: only subjects that have at least one prediction are scored, and in them only the
   videos that have ground truth. Predictions in a video without ground truth are ignored
   (the definition: false positives); truths of a subject without any prediction are
   ignored (the definition: false negatives).
2. Matching: a prediction is not used up by its first match. In file order, it takes every
   still-unmatched truth of its video with IoU >= the threshold, and each (prediction,
   truth) pair is a true positive; a prediction with no match is one false positive. A
   truth is still matched at most once.
3. Types play no part (the layout has no type column).
4. Analysis F1: without explicit classes, the classes are the ground truth's emotions and,
   if some truth has none, "no emotion" as one more class, which no pair can get right
   (it lowers both averages); pairs whose truth has no emotion are kept and count against
   their predicted class. A class for which every analysed pair is (c, c) scores 0, not 1
   (the script's 2x2 confusion matrix degenerates to 1x1 and is read as zeros). Where both
   averages are 0 the script prints nan; this gives 0.

Emotion labels still compare case-insensitively, as everywhere here.
"""
from __future__ import annotations

from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from .intervals import Interval, Threshold, exact_threshold, group_by_video, meets, normalise_emotion, overlap
from .spotting import prf

NO_EMOTION = ""


def official_matches(gt: Sequence[Interval], pred: Sequence[Interval], iou: Threshold = 0.5) -> dict:
    """The official script's spotting: ``{"pairs": [(pred_index, gt_index)], "fp", "fn",
    "ignored_predictions", "ignored_truths", "multi_matches"}`` (departures 1-3 above)."""
    t = exact_threshold(iou)
    subjects = {p.subject for p in pred}
    truths = group_by_video(gt)
    preds = group_by_video(pred)
    pairs: List[Tuple[int, int]] = []
    fp = fn = multi = 0
    for key, g_idx in truths.items():
        if key[0] not in subjects:
            continue
        taken = set()
        for p in preds.get(key, ()):
            found = 0
            for g in g_idx:
                if g not in taken and meets(*overlap(pred[p], gt[g]), t):
                    taken.add(g)
                    pairs.append((p, g))
                    found += 1
            fp += found == 0
            multi += found > 1
        fn += len(g_idx) - len(taken)
    return {
        "pairs": pairs, "fp": fp, "fn": fn, "multi_matches": multi,
        "ignored_predictions": sum(p.key not in truths for p in pred),
        "ignored_truths": sum(g.subject not in subjects for g in gt),
    }


def official_analysis_f1(pairs: Iterable[Tuple[str, str]], classes: Sequence[str]) -> Tuple[float, List[str]]:
    """Analysis F1 of ``(true, predicted)`` emotion pairs over ``classes`` as the script does it
    (departure 4; ``NO_EMOTION`` in ``classes`` is the extra class). Returns (F1, classes that
    scored 0 only because all their pairs were right)."""
    wanted = list(dict.fromkeys(classes))
    if not wanted:
        return 0.0, []
    kept = [(t, p) for t, p in pairs if t in wanted]
    p_sum = r_sum = 0.0
    degenerate = []
    for c in sorted(wanted):
        if c == NO_EMOTION:
            continue  # "no emotion" never equals itself in the script: P = R = 0
        tp = sum(t == c and p == c for t, p in kept)
        fp = sum(t != c and p == c for t, p in kept)
        fn = sum(t == c and p != c for t, p in kept)
        if kept and tp == len(kept):
            degenerate.append(c)
            continue
        p_sum += tp / (tp + fp) if tp + fp else 0.0
        r_sum += tp / (tp + fn) if tp + fn else 0.0
    p_bar, r_bar = p_sum / len(wanted), r_sum / len(wanted)
    return (2 * p_bar * r_bar / (p_bar + r_bar) if p_bar + r_bar else 0.0), degenerate


def official_scores(gt: Sequence[Interval], pred: Sequence[Interval], iou: Threshold = 0.5,
                    classes: Optional[Iterable[str]] = None) -> Dict[str, object]:
    """``{"spotting": {"overall": prf}, "analysis_f1", "strs", "notes": [...]}`` as the
    official script computes them; the notes say which departures changed anything."""
    m = official_matches(gt, pred, iou)
    pairs = [(gt[g].emotion, pred[p].emotion) for p, g in m["pairs"]]
    if classes is None:
        wanted = sorted({x.emotion for x in gt})  # "" included: departure 4
    else:
        wanted = sorted({normalise_emotion(c) for c in classes} - {""})
    f1_analysis, degenerate = official_analysis_f1(pairs, wanted)
    spotting = {"overall": prf(len(m["pairs"]), m["fp"], m["fn"])}
    notes = ["official STRS script: expression types are not looked at"]
    if m["ignored_predictions"]:
        notes.append(f"official STRS script: {m['ignored_predictions']} prediction(s) in videos without ground "
                     f"truth ignored (the definition counts them as false positives)")
    if m["ignored_truths"]:
        notes.append(f"official STRS script: {m['ignored_truths']} truth(s) of subjects without any prediction "
                     f"ignored (the definition counts them as false negatives)")
    if m["multi_matches"]:
        notes.append(f"official STRS script: {m['multi_matches']} prediction(s) matched more than one truth")
    if NO_EMOTION in wanted:
        notes.append("official STRS script: truths without an emotion make one more analysis class, scored 0")
    if degenerate:
        notes.append(f"official STRS script: class(es) {', '.join(degenerate)} scored 0 because every analysed "
                     f"pair was right (the script prints nan for the analysis F1 here; 0 is given)")
    return {"spotting": spotting, "analysis_f1": f1_analysis,
            "strs": spotting["overall"]["f1"] * f1_analysis, "notes": notes}
