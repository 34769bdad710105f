"""``visionattn evaluate``: score predicted expression intervals against ground truth.

Prints MEGC spotting P/R/F1 (micro, macro, overall), the analysis F1, STRS and detection
mAP, as a table or (``--json``) as the dict of :func:`visionattn.evaluation.evaluate`.
Reads our CSV layout, the official STRS script's (no type column: overall only) and MEGC
submission rows (``vid,pred_onset,pred_offset,type``; ``vid`` = ``subject_video``).
``--official-script`` scores as the official STRS script does (:mod:`.official`); the
default is the definition.
"""
from __future__ import annotations

import argparse
import json

from ..utils import UserError
from .intervals import exact_threshold
from .report import evaluate, format_report
from .tables import read_intervals_csv


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gt", required=True,
                        help="ground-truth CSV: subject,video,onset,offset,type,emotion (type optional), "
                             "e.g. written by `visionattn annotations`")
    parser.add_argument("--pred", required=True,
                        help="prediction CSV: the same columns, optionally score; or MEGC rows "
                             "vid,pred_onset,pred_offset,type with vid = subject_video")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON instead of a table")
    parser.add_argument("--classes", default=None,
                        help="comma-separated emotions for the analysis F1 (default: those in the ground truth)")
    parser.add_argument("--iou", default="0.5",
                        help="IoU a prediction needs to match a truth in spotting (default 0.5; inclusive)")
    parser.add_argument("--official-script", action="store_true",
                        help="score as the official MEGC STRS script does where it departs from the definition "
                             "(ignores predictions in videos without ground truth, lets one prediction match "
                             "several overlapping truths); the default is the definition")


def _parse_iou(text: str) -> str:
    try:
        exact_threshold(text)
    except ValueError:
        raise UserError(f"--iou: expected a number in (0, 1], got {text!r}") from None
    return text


def run(args: argparse.Namespace) -> dict:
    # Kept as text: exact_threshold reads "0.5" as exactly 1/2.
    iou = _parse_iou(args.iou)
    classes = None
    if args.classes is not None:
        classes = [c.strip() for c in args.classes.split(",") if c.strip()]
        if not classes:
            raise UserError("--classes: no class names given")
    gt = read_intervals_csv(args.gt)
    pred = read_intervals_csv(args.pred, videos={x.key for x in gt})
    result = evaluate(gt, pred, iou, classes, official=args.official_script)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(format_report(result), end="")
    return result
