"""Evaluation of expression spotting and recognition, with the MEGC conventions.

Intervals are inclusive frame ranges (:class:`Interval`); a prediction matches a truth at
IoU >= 0.5, one-to-one and greedily in file order (:func:`spotting_scores`); STRS is the
overall spotting F1 times the analysis F1 (:func:`strs`); :func:`detection_map` is the
ActivityNet-style mAP over emotion classes; :func:`official_scores` is STRS as the official
MEGC script computes it. ``visionattn evaluate`` runs them on CSV files.
"""
from .detection import THRESHOLDS, average_precision, detection_map
from .intervals import UNTYPED, Interval, greedy_match, iou, is_typed, overlap, video_name
from .official import official_scores
from .recognition import analysis_f1, analysis_f1_from_labels, strs
from .report import evaluate, format_report
from .spotting import prf, spotting_matches, spotting_scores
from .tables import COLUMNS, read_intervals_csv, write_intervals_csv

__all__ = [
    "COLUMNS", "THRESHOLDS", "Interval", "analysis_f1", "analysis_f1_from_labels", "average_precision",
    "detection_map", "evaluate", "format_report", "greedy_match", "iou", "overlap", "prf",
    "read_intervals_csv", "spotting_matches", "spotting_scores", "strs", "write_intervals_csv",
    "UNTYPED", "is_typed", "official_scores", "video_name",
]
