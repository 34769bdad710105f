"""The 68-point face landmark scheme (iBUG 300-W, as dlib's ``shape_predictor_68_face_landmarks``).

Indices are 0-based. "Right" and "left" are the subject's own: the subject's right eye
(36-41) appears on the image's left in a frontal, unmirrored view. Landmarks are ``(68, 2)``
float arrays of ``(x, y)`` pixels, x to the right, y down.
"""
from __future__ import annotations

from typing import Dict, Tuple

import numpy as np

NUM_LANDMARKS = 68

GROUPS: Dict[str, Tuple[int, ...]] = {
    "jaw": tuple(range(0, 17)),
    "right_brow": tuple(range(17, 22)),
    "left_brow": tuple(range(22, 27)),
    "nose_bridge": tuple(range(27, 31)),
    "nose_base": tuple(range(31, 36)),
    "right_eye": tuple(range(36, 42)),
    "left_eye": tuple(range(42, 48)),
    "outer_lips": tuple(range(48, 60)),
    "inner_lips": tuple(range(60, 68)),
}

NOSE = GROUPS["nose_bridge"] + GROUPS["nose_base"]
RIGHT_MOUTH_CORNER = 48
LEFT_MOUTH_CORNER = 54
CHIN = (7, 8, 9)


def eye_centres(landmarks: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """``(right_eye, left_eye)`` centres, each ``(2,)``: the mean of each eye's six points."""
    pts = np.asarray(landmarks, dtype=np.float64)
    return pts[list(GROUPS["right_eye"])].mean(0), pts[list(GROUPS["left_eye"])].mean(0)


def nose_tip(landmarks: np.ndarray) -> np.ndarray:
    """Point 30, the tip of the nose: ``(2,)``."""
    return np.asarray(landmarks, dtype=np.float64)[30]
