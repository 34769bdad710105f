"""Face front ends: dlib detection, 68 landmarks tracked per frame, alignment, shot cuts; and
:mod:`.haar`, the earlier OpenCV Haar-cascade front end (a smoothed box, no landmarks) that the
``haar`` feature recipe uses.

``FaceTracker(...).process(iter_frames(path))`` yields one ``FaceObservation`` per frame;
frames without a sustained face carry ``landmarks=None``. Importing this package does not
load dlib's models; constructing a ``FaceTracker`` does (once per process).
"""
from .alignment import TEMPLATE, AlignedFace, align_face, anchor_points, apply_transform, similarity_transform, template_points
from .dlib_models import frontal_detector, predictor_path, shape_predictor
from .landmarks68 import GROUPS, NUM_LANDMARKS, expression_in_view, eye_centres, nose_tip
from .shot_cuts import ShotCutDetector
from .tracking import Box, FaceObservation, FaceTracker, FaceTrackReport, TrackerSettings, motion_between

__all__ = [
    "AlignedFace", "Box", "FaceObservation", "FaceTrackReport", "FaceTracker", "GROUPS", "NUM_LANDMARKS",
    "ShotCutDetector", "TEMPLATE", "align_face", "anchor_points", "apply_transform", "eye_centres",
    "expression_in_view", "frontal_detector", "motion_between", "nose_tip", "predictor_path", "shape_predictor",
    "similarity_transform", "template_points", "TrackerSettings",
]
