"""All figures of one evaluation in one dict (the ``--json`` output), and its text table."""
from __future__ import annotations

from typing import Iterable, List, Optional, Sequence

from .detection import THRESHOLDS, detection_map
from .intervals import Interval, Threshold, is_typed
from .official import official_scores
from .recognition import analysis_f1, gt_classes
from .spotting import spotting_scores

SCORINGS = ("definition", "official-script")


def evaluate(gt: Sequence[Interval], pred: Sequence[Interval], iou: Threshold = 0.5,
             classes: Optional[Iterable[str]] = None,
             thresholds: Sequence[Threshold] = THRESHOLDS, official: bool = False) -> dict:
    """Spotting, analysis F1, STRS and detection mAP of ``pred`` against ``gt``.

    ``iou`` is the spotting (and analysis) threshold; ``classes`` the analysed emotions
    (default: those in ``gt``); ``thresholds`` the tIoUs of the mAP; ``official``: spotting,
    analysis F1 and STRS as the official MEGC STRS script computes them
    (:mod:`.official`; mAP is not part of it and stays as defined). Returns
    ``{"scoring": "definition" | "official-script", "spotting": {"micro"|"macro"|"overall":
    {"tp", "fp", "fn", "precision", "recall", "f1"}}, "analysis_f1": float, "strs": float,
    "map": detection_map(...), "notes": [str]}``; ``spotting`` has only ``overall`` when a
    file has no type column or with ``official``.
    """
    classes = None if classes is None else list(classes)
    notes: List[str] = []
    if official:
        scores = official_scores(gt, pred, iou, classes)
        spotting, f1_analysis, notes = scores["spotting"], scores["analysis_f1"], list(scores["notes"])
    else:
        spotting = spotting_scores(gt, pred, iou)
        f1_analysis = analysis_f1(gt, pred, iou, classes)
        if not is_typed(gt, pred):
            where = [name for name, group in (("ground truth", gt), ("predictions", pred)) if not is_typed(group)]
            notes.append(f"per-type rows need a `type` column (missing in the {' and the '.join(where)}); "
                         f"overall matches predictions to truths of either type")
    if pred and gt_classes(gt) and not any(p.emotion for p in pred):
        notes.append("the predictions carry no emotion: analysis F1, STRS and detection mAP are 0")
    return {
        "scoring": SCORINGS[official],
        "spotting": spotting,
        "analysis_f1": f1_analysis,
        "strs": spotting["overall"]["f1"] * f1_analysis,
        "map": detection_map(gt, pred, thresholds),
        "notes": notes,
    }


def _table(header: List[str], rows: List[List[str]]) -> List[str]:
    """Left-aligned first column, right-aligned numbers."""
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    return ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(r, widths)))
            for r in [header] + rows]


def format_report(result: dict) -> str:
    """The figures of :func:`evaluate` as aligned plain-text tables, then its notes."""
    spot = result["spotting"]
    scoring = result.get("scoring", SCORINGS[0])
    lines = [f"spotting ({'as the official STRS script' if scoring == SCORINGS[1] else 'MEGC definition'})"]
    lines += _table(["", "TP", "FP", "FN", "precision", "recall", "F1"],
                    [[k, str(v["tp"]), str(v["fp"]), str(v["fn"]),
                      f"{v['precision']:.4f}", f"{v['recall']:.4f}", f"{v['f1']:.4f}"] for k, v in spot.items()])
    lines += ["", f"analysis F1  {result['analysis_f1']:.4f}", f"STRS         {result['strs']:.5f}", ""]
    m = result["map"]
    keys = list(m["mean"])
    lines.append("detection AP (interval and emotion right) by tIoU")
    rows = [[c] + [f"{aps[k]:.4f}" for k in keys] for c, aps in m["per_class"].items()]
    rows.append(["mAP"] + [f"{m['mean'][k]:.4f}" for k in keys])
    lines += _table(["class"] + keys, rows)
    lines.append(f"mAP averaged over tIoU {', '.join(keys)}: {m['average']:.4f}")
    notes = result.get("notes", [])
    if notes:
        lines += [""] + [f"note: {n}" for n in notes]
    return "\n".join(lines) + "\n"
