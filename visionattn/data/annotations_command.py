"""``visionattn annotations``: an official annotation workbook -> the ground-truth CSV that
``visionattn evaluate`` reads.

    visionattn annotations "CAS(ME)^2code_final.xlsx" --dataset casme2 --out casme2_gt.csv
    visionattn annotations SAMM_LongVideos_V3_Release.xlsx --dataset samm --out samm_gt.csv
    visionattn annotations "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx" --dataset casme3 --out casme3_micro_gt.csv

One row per expression: ``subject,video,onset,apex,offset,type,emotion,emotion_raw,aus``
(type micro/macro, emotion one of the 4 MEGC classes or empty where the dataset gives none;
frame numbers are the workbook's). Prints the counts per type, the subjects and videos, and
every quirk it resolved with the number of rows concerned; a malformed row (frame number
missing, onset after apex or offset, apex outside the interval) is dropped and listed with its
sheet, row and values, or, with ``--strict``, refused. No frames are needed.
"""
from __future__ import annotations

import argparse

from ..utils import UserError, atomic_write_text, counted
from .annotations import EMOTIONS4, EXPRESSION_TYPES, ground_truth_csv, parse_missing_offset



def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("workbooks", nargs="+", metavar="WORKBOOK",
                        help="the dataset's annotation workbook(s) as distributed, or the folder holding them")
    parser.add_argument("--dataset", required=True, choices=("casme2", "samm", "casme3"))
    parser.add_argument("--out", required=True, help="ground-truth CSV to write")
    parser.add_argument("--missing-offset", default="apex",
                        help="offset 0 (missing): apex (offset := apex, default), drop, error, or N (apex + N)")
    parser.add_argument("--onset-zero", choices=("drop", "keep"), default="drop",
                        help="SAMM-LV rows with onset 0: drop (default, as the published baselines) or keep")
    parser.add_argument("--strict", action="store_true",
                        help="refuse a malformed row (frame number missing, onset after apex or offset, apex outside "
                             "the interval) instead of dropping it and listing it among the quirks")


def summary(table) -> dict:
    """Counts per type, subjects, videos and the quirks resolved."""
    return {
        "rows": len(table),
        "types": {k: int((table["type"] == k).sum()) for k in EXPRESSION_TYPES},
        "subjects": int(table["subject"].nunique()),
        "videos": int(table[["subject", "video"]].drop_duplicates().shape[0]),
        "emotions": {e: int((table["emotion"] == e).sum()) for e in EMOTIONS4 if (table["emotion"] == e).any()},
        "quirks": dict(table.attrs.get("quirks", {})),
        "workbooks": list(table.attrs.get("workbooks", [])),
    }


def format_summary(dataset: str, s: dict, out: str) -> str:
    types = ", ".join(f"{s['types'][k]} {k}" for k in reversed(EXPRESSION_TYPES))
    lines = [f"{dataset}: {counted(s['rows'], 'expression')} ({types}), {counted(s['subjects'], 'subject')}, "
             f"{counted(s['videos'], 'video')} -> {out}"]
    lines += [f"  read {w}" for w in s["workbooks"]]
    if s["emotions"]:
        lines.append("  emotions: " + ", ".join(f"{k} {v}" for k, v in s["emotions"].items()))
    if s["quirks"]:
        lines.append("  quirks resolved:")
        lines += [f"    {what}: {counted(n, 'row')}" for what, n in s["quirks"].items()]
    else:
        lines.append("  no quirks found")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> dict:
    from .datasets import load_annotations

    missing = parse_missing_offset(args.missing_offset)
    if args.onset_zero != "drop" and args.dataset != "samm":
        raise UserError("--onset-zero applies to --dataset samm only")
    table = load_annotations(args.dataset, args.workbooks, missing, args.onset_zero, strict=args.strict)
    atomic_write_text(args.out, ground_truth_csv(table))
    result = summary(table)
    print(format_summary(args.dataset, result, args.out), end="")
    return result
