"""Face alignment: a similarity transform that puts the eyes and nose at fixed crop positions.

Coordinates: points are ``(x, y)`` pixels, x to the right, y down, with pixel centres at
integer coordinates (OpenCV's convention: ``cv2.warpAffine`` samples the source at
``M^-1 @ (x, y, 1)`` for output pixel ``(x, y)``). A 2x3 matrix ``M`` maps a frame point ``p``
to crop point ``M @ (p_x, p_y, 1)``.

The canonical template for an ``S x S`` crop (fractions of ``S``, subject's right eye on the
image's left as in a frontal unmirrored view): right eye centre ``(0.34, 0.36)``, left eye
centre ``(0.66, 0.36)``, nose tip ``(0.50, 0.54)``. The eye-to-nose drop is 0.5625 of the
eye distance, as on an average frontal face (0.56 on the astronaut photo), and the crop keeps
the brows (about 0.26), the mouth (about 0.66) and the chin (about 0.90) inside.

A similarity (rotation, uniform scale, translation; no shear, no reflection) cannot change a
face's shape, so expressions survive alignment while in-plane head motion does not.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import cv2
import numpy as np

from .landmarks68 import NUM_LANDMARKS, eye_centres, nose_tip

TEMPLATE: dict[str, Tuple[float, float]] = {
    "right_eye": (0.34, 0.36),
    "left_eye": (0.66, 0.36),
    "nose_tip": (0.50, 0.54),
}


def template_points(size: int) -> np.ndarray:
    """``(3, 2)`` float64 template positions in crop pixels: right eye, left eye, nose tip.

    A fraction ``f`` lands at ``f * size - 0.5``, so the template scales with the crop's area
    (pixel ``i`` covers ``[i - 0.5, i + 0.5)``) rather than with its last pixel index.
    """
    return np.array([TEMPLATE["right_eye"], TEMPLATE["left_eye"], TEMPLATE["nose_tip"]], np.float64) * size - 0.5


def anchor_points(landmarks: np.ndarray) -> np.ndarray:
    """``(3, 2)`` float64: right eye centre, left eye centre, nose tip of ``(68, 2)`` landmarks."""
    right, left = eye_centres(landmarks)
    return np.stack([right, left, nose_tip(landmarks)])


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2x3 similarity ``M`` minimising ``sum |M @ (src_i, 1) - dst_i|^2`` (Umeyama, 1991).

    ``src`` and ``dst`` are ``(N, 2)``, N >= 2 points not all equal. The result is
    ``[[a, -b, tx], [b, a, ty]]``: scale ``hypot(a, b)``, rotation ``atan2(b, a)``; a
    reflection is never chosen.
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(f"need two (N, 2) point arrays with N >= 2, got {src.shape} and {dst.shape}")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    var_s = float((s**2).sum())
    if var_s <= 0.0:
        raise ValueError("source points all coincide; no transform is defined")
    # For 2-D similarities the least-squares solution is closed form with complex numbers:
    # z_dst ~ c * z_src, c = sum(conj(z_src) z_dst) / sum |z_src|^2, which is Umeyama's
    # rotation and scale with the reflection excluded.
    zs = s[:, 0] + 1j * s[:, 1]
    zd = d[:, 0] + 1j * d[:, 1]
    c = complex((np.conj(zs) * zd).sum() / var_s)
    a, b = c.real, c.imag
    linear = np.array([[a, -b], [b, a]])
    return np.hstack([linear, (mu_d - linear @ mu_s)[:, None]])


def apply_transform(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map ``(N, 2)`` points by a 2x3 matrix: ``(N, 2)`` float64."""
    points = np.asarray(points, np.float64)
    return points @ np.asarray(matrix, np.float64)[:, :2].T + np.asarray(matrix, np.float64)[:, 2]


@dataclass
class AlignedFace:
    """``image``: ``(S, S, 3)`` uint8 crop, same channel order as the frame; ``matrix``: 2x3
    float64 frame -> crop; ``landmarks``: ``(68, 2)`` float32 in crop pixels."""

    image: np.ndarray
    matrix: np.ndarray
    landmarks: np.ndarray


def align_face(frame: np.ndarray, landmarks: np.ndarray, size: int = 112) -> AlignedFace:
    """Warp ``frame`` (``(H, W, 3)`` or ``(H, W)`` uint8) so the eye centres and nose tip of
    ``landmarks`` (``(68, 2)`` frame pixels) land on the template of an ``size x size`` crop.

    Where the crop reaches past the frame it is filled by replicating the border, which
    keeps a spurious edge out of the face (a black band would look like motion when the
    head moves near the border).
    """
    landmarks = np.asarray(landmarks)
    if landmarks.shape != (NUM_LANDMARKS, 2):
        raise ValueError(f"need ({NUM_LANDMARKS}, 2) landmarks, got {landmarks.shape}")
    matrix = similarity_transform(anchor_points(landmarks), template_points(size))
    image = _warp(frame, matrix, size)
    return AlignedFace(image, matrix, apply_transform(matrix, landmarks).astype(np.float32))


def _warp(frame: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    scale = float(np.hypot(matrix[0, 0], matrix[1, 0]))
    if scale >= 0.5:
        return cv2.warpAffine(frame, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    # Shrinking by more than 2x with bilinear sampling aliases (texture flickers from frame to
    # frame, which looks like motion); INTER_AREA is not defined for general warps, so blur the
    # source region that the crop covers in proportion to the shrink, then warp it.
    inverse = cv2.invertAffineTransform(matrix)
    corners = apply_transform(inverse, np.array([[0, 0], [size, 0], [0, size], [size, size]], np.float64))
    sigma = (1.0 / scale - 1.0) / 2.0
    pad = int(np.ceil(3 * sigma)) + 2
    height, width = frame.shape[:2]
    x0 = int(np.clip(np.floor(corners[:, 0].min()) - pad, 0, width - 1))
    y0 = int(np.clip(np.floor(corners[:, 1].min()) - pad, 0, height - 1))
    x1 = int(np.clip(np.ceil(corners[:, 0].max()) + pad + 1, x0 + 1, width))
    y1 = int(np.clip(np.ceil(corners[:, 1].max()) + pad + 1, y0 + 1, height))
    region = cv2.GaussianBlur(frame[y0:y1, x0:x1], (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REPLICATE)
    shifted = matrix.copy()
    shifted[:, 2] += matrix[:, :2] @ np.array([x0, y0], np.float64)
    return cv2.warpAffine(region, shifted, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
