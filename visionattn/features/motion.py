"""Facial motion features: dense optical flow on aligned face crops, pooled over landmark regions.

For each frame ``t`` the flow is computed from the aligned grey crop of frame ``t - lag`` (the
*reference*) to that of frame ``t``, where ``lag = max(1, round(interval_s * fps))``, so the
same ``interval_s`` means the same time span at any frame rate. Following the strongest
spotters (MDMD, ME-TST, SpotFormer: flow between a frame and one ``k`` frames earlier, with
``k`` about half a micro-expression's duration), the flow is averaged over small facial
regions and the nose region's mean flow is subtracted, which removes what is left of head
motion after alignment (mostly translation jitter of the crop).

Conventions
-----------
* Crops are ``(S, S)`` uint8 grey (BGR ``(S, S, 3)`` is converted), landmarks ``(68, 2)``
  float ``(x, y)`` in crop pixels (x right, y down; integer coordinates are pixel centres, as
  in OpenCV), indexed as in :mod:`visionattn.faces.landmarks68`.
* Flow ``(S, S, 2)`` is ``(dx, dy)`` in pixels on the reference frame's grid: the point at
  pixel ``p`` of the reference is at ``p + flow[p]`` in the current frame. So regions are
  placed with the *reference* frame's landmarks.
* A region is the set of pixels whose centre lies within ``radius * IOD`` of one of its
  anchor points, where IOD is the inter-ocular distance (between the two eye centres of
  :func:`visionattn.faces.landmarks68.eye_centres`) and each anchor is the mean of a few
  landmarks (see :data:`REGIONS`). With the default ``radius = 0.15`` the brow and eye
  regions barely touch, so a brow raise and a blink stay in separate rows.
* Features are in percent of the IOD (so crops of 112 or 128 pixels give the same numbers),
  three per region: ``dx`` and ``dy``, the region's mean flow minus the nose region's mean
  flow, and ``mag``, the mean length of that residual flow vector over the region's pixels
  (it sees motions that cancel in the mean, such as a mouth opening, and has a small positive
  floor from flow noise). The nose row is the exception: its ``dx``/``dy`` are the nose's raw
  mean flow, i.e. the head (or alignment) motion itself, which a spotter needs to tell a face
  movement from a head movement, and its ``mag`` is the nose's own deformation (nose wrinkle).

Flow method (measured on one thread, 112 / 128 pixel crops of smooth texture with grey-level
noise of sd 2, brow raised by a smooth 0.5-6 pixel bump): Farneback (3 levels, window 9,
3 iterations) costs about 1.6 / 2.3 ms, plus 0.4 ms of pooling, reads a brow-sized local motion
at 80-85 % of its true size with 20 % leaking into the eye below, and is the least noisy (brow
``dy`` signal-to-noise 39 for a 0.5 pixel raise). A 15-pixel window is as quiet but reads 70 %
and leaks more; 2 iterations fail above about 5 pixels. OpenCV's DIS presets
``ultrafast``/``fast`` cost only 0.1-0.2 ms but stop at a quarter of the resolution (finest
scale 2), so they read the same local motion at 20-30 % of its size, spread it into the eye
region (60-70 %) and reach a signal-to-noise of 7-11. Made to work at full resolution
(``finest_scale=0``) DIS reads as much as Farneback, but ``ultrafast`` is then noisier
(signal-to-noise 29 at 1.3 / 1.8 ms) and ``fast`` slower (42 at 2.9 / 3.6 ms). Farneback is
the default; the DIS presets stay available (``method``, ``flow_params``).

OpenCV's thread count is the caller's business (``cv2.setNumThreads``); nothing here sets it.
"""
from __future__ import annotations

import base64
import collections
import zlib
from typing import Any, Deque, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from ..faces import landmarks68 as lm68
from ..utils import UserError

# Each region is a tuple of anchors; an anchor is the mean of the listed landmarks.
REGIONS: Dict[str, Tuple[Tuple[int, ...], ...]] = {
    "right_brow": tuple((i,) for i in lm68.GROUPS["right_brow"]),
    "left_brow": tuple((i,) for i in lm68.GROUPS["left_brow"]),
    "right_eye": tuple((i,) for i in lm68.GROUPS["right_eye"]),
    "left_eye": tuple((i,) for i in lm68.GROUPS["left_eye"]),
    # The head-motion reference: the bony bridge and the tip (28-30). Point 27, between the
    # brows, moves with a frown (procerus, AU4); the nostrils (31-35) move with a nose wrinkle
    # or an upper-lip raise (AU9/AU10) and lie within 0.3 IOD of the upper lip.
    "nose": ((28,), (29,), (30,)),
    # Outer and inner corner of each side of the mouth.
    "right_mouth_corner": ((lm68.RIGHT_MOUTH_CORNER,), (60,)),
    "left_mouth_corner": ((lm68.LEFT_MOUTH_CORNER,), (64,)),
    # Mid-line of both lips: lip press, mouth opening (in ``mag``), upper-lip raise.
    "mouth": ((51,), (62,), (66,), (57,)),
    # Halfway between the chin contour and the lower lip: the chin contour points lie on the
    # face's edge, where half of a disc would be background.
    "chin": tuple((c, l) for c, l in zip(lm68.CHIN, (58, 57, 56))),
}
REGION_NAMES: Tuple[str, ...] = tuple(REGIONS)
REFERENCE_REGION = "nose"
STATS: Tuple[str, ...] = ("dx", "dy", "mag")

DEFAULT_INTERVAL_S = 0.2
DEFAULT_RADIUS = 0.15
FLOW_METHODS = ("farneback", "dis_ultrafast", "dis_fast", "dis_medium")
FARNEBACK_DEFAULTS = dict(pyr_scale=0.5, levels=3, winsize=9, iterations=3, poly_n=5, poly_sigma=1.1)
_DIS_PRESETS = {
    "dis_ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "dis_fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "dis_medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}
_DIS_SETTERS = {
    "finest_scale": "setFinestScale",
    "patch_size": "setPatchSize",
    "patch_stride": "setPatchStride",
    "gradient_descent_iterations": "setGradientDescentIterations",
    "variational_refinement_iterations": "setVariationalRefinementIterations",
}

# (A, 68) averaging matrix: anchors = _ANCHOR_MATRIX @ landmarks.
_ANCHORS = [a for r in REGION_NAMES for a in REGIONS[r]]
_ANCHOR_MATRIX = np.zeros((len(_ANCHORS), lm68.NUM_LANDMARKS))
for _row, _anchor in enumerate(_ANCHORS):
    _ANCHOR_MATRIX[_row, list(_anchor)] = 1.0 / len(_anchor)
_REGION_SLICES: List[slice] = []
_start = 0
for _r in REGION_NAMES:
    _REGION_SLICES.append(slice(_start, _start + len(REGIONS[_r])))
    _start += len(REGIONS[_r])
_NOSE_ROW = REGION_NAMES.index(REFERENCE_REGION)


def feature_names() -> List[str]:
    """Names of the feature columns, ``"<region>.<stat>"`` (e.g. ``"left_brow.dy"``), region-major."""
    return [f"{r}.{s}" for r in REGION_NAMES for s in STATS]


def region_anchors(landmarks: np.ndarray) -> List[np.ndarray]:
    """Each region's anchor points, ``(K_r, 2)`` in the landmarks' pixels, in :data:`REGION_NAMES` order."""
    anchors = _ANCHOR_MATRIX @ np.asarray(landmarks, dtype=np.float64)
    return [anchors[s] for s in _REGION_SLICES]


def inter_ocular_distance(landmarks: np.ndarray) -> float:
    """Distance between the two eye centres, in the landmarks' pixels."""
    right, left = lm68.eye_centres(landmarks)
    return float(np.hypot(*(left - right)))


class FlowEstimator:
    """Dense optical flow between two grey images of one size.

    ``method``: one of :data:`FLOW_METHODS`; ``params``: overrides of
    :data:`FARNEBACK_DEFAULTS` (Farneback), or of the DIS preset's ``finest_scale``,
    ``patch_size``, ``patch_stride``, ``gradient_descent_iterations``,
    ``variational_refinement_iterations``.
    """

    def __init__(self, method: str = "farneback", params: Optional[Dict[str, Any]] = None) -> None:
        params = dict(params or {})
        if method == "farneback":
            unknown = set(params) - set(FARNEBACK_DEFAULTS)
            self.params = {**FARNEBACK_DEFAULTS, **params}
        elif method in _DIS_PRESETS:
            unknown = set(params) - set(_DIS_SETTERS)
            self.params = params
        else:
            raise UserError(f"method: unknown optical flow method {method!r}; choose one of {', '.join(FLOW_METHODS)}")
        if unknown:
            raise UserError(f"flow_params: unknown key(s) {', '.join(sorted(unknown))} for method {method!r}")
        self.method = method
        self._dis = None
        if method in _DIS_PRESETS:
            self._dis = cv2.DISOpticalFlow_create(_DIS_PRESETS[method])
            for key, value in params.items():
                getattr(self._dis, _DIS_SETTERS[key])(int(value))

    def settings(self) -> Dict[str, Any]:
        return {"method": self.method, "params": dict(self.params)}

    def __call__(self, reference: np.ndarray, current: np.ndarray) -> np.ndarray:
        """``(H, W)`` uint8 reference and current images -> ``(H, W, 2)`` float32 flow, see the module doc."""
        if self._dis is not None:
            return self._dis.calc(reference, current, None)
        p = self.params
        return cv2.calcOpticalFlowFarneback(
            reference, current, None, p["pyr_scale"], int(p["levels"]), int(p["winsize"]),
            int(p["iterations"]), int(p["poly_n"]), p["poly_sigma"], 0,
        )


def _region_motion(flow: np.ndarray, landmarks: np.ndarray, radius: float) -> Optional[np.ndarray]:
    """As :func:`region_motion`, or None where the landmarks give no usable regions."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if landmarks.shape != (lm68.NUM_LANDMARKS, 2) or not np.all(np.isfinite(landmarks)):
        return None
    iod = inter_ocular_distance(landmarks)
    if iod < 1.0:
        return None
    r = radius * iod
    height, width = flow.shape[:2]
    pooled: List[Optional[np.ndarray]] = []  # each region's flow vectors, (n, 2)
    for anchors in region_anchors(landmarks):
        x0 = max(0, int(np.ceil(anchors[:, 0].min() - r)))
        x1 = min(width, int(np.floor(anchors[:, 0].max() + r)) + 1)
        y0 = max(0, int(np.ceil(anchors[:, 1].min() - r)))
        y1 = min(height, int(np.floor(anchors[:, 1].max() + r)) + 1)
        if x1 <= x0 or y1 <= y0:
            pooled.append(None)
            continue
        xs = np.arange(x0, x1, dtype=np.float64)
        ys = np.arange(y0, y1, dtype=np.float64)
        d2 = (xs[None, None, :] - anchors[:, 0, None, None]) ** 2 + (ys[None, :, None] - anchors[:, 1, None, None]) ** 2
        mask = d2.min(axis=0) <= r * r
        pooled.append(flow[y0:y1, x0:x1][mask].astype(np.float64) if mask.any() else None)
    nose = pooled[_NOSE_ROW]
    if nose is None:  # no head-motion reference: the residuals would mean nothing
        return None
    head = nose.mean(axis=0)
    out = np.zeros((len(REGION_NAMES), len(STATS)), dtype=np.float64)
    for row, vectors in enumerate(pooled):
        if vectors is None:  # region entirely outside the crop: no evidence, no motion
            continue
        residual = vectors - head
        out[row, :2] = vectors.mean(axis=0) if row == _NOSE_ROW else residual.mean(axis=0)
        out[row, 2] = np.hypot(residual[:, 0], residual[:, 1]).mean()
    return (out * (100.0 / iod)).astype(np.float32)


def region_motion(flow: np.ndarray, landmarks: np.ndarray, radius: float = DEFAULT_RADIUS) -> np.ndarray:
    """Pool a flow field over the landmark regions.

    ``flow``: ``(H, W, 2)`` ``(dx, dy)`` pixels on the grid of the image ``landmarks``
    (``(68, 2)`` ``(x, y)`` pixels) belong to. Returns ``(R, 3)`` float32, rows in
    :data:`REGION_NAMES` order, columns :data:`STATS`, in percent of the inter-ocular distance
    (see the module doc for what each number means). A region wholly outside the image gets a
    zero row. Raises ValueError when the landmarks are malformed, the eyes coincide, or the
    nose region lies outside the image.
    """
    out = _region_motion(np.asarray(flow), landmarks, radius)
    if out is None:
        raise ValueError("landmarks give no usable nose region (malformed, degenerate or outside the image)")
    return out


def _encode_image(image: np.ndarray) -> str:
    return base64.b64encode(zlib.compress(np.ascontiguousarray(image).tobytes(), 1)).decode("ascii")


def _decode_image(text: str, shape: Sequence[int]) -> np.ndarray:
    return np.frombuffer(zlib.decompress(base64.b64decode(text)), dtype=np.uint8).reshape(shape).copy()


def motion_lag(interval_s: float, fps: float) -> int:
    """The motion stream's lag in frames: ``interval_s`` seconds at ``fps``, at least one frame.

    The one place this is computed: the flow spotter's box smoothing and run starts use the
    same lag as the stream that made the features.
    """
    return max(1, int(round(interval_s * fps)))


class FacialMotionStream:
    """Per-frame motion features of one video, computed as frames arrive.

    ``fps``: the video's frame rate; ``interval_s``: how far back the reference frame is, in
    seconds (default 0.2 s: about half a micro-expression, whose 0.3-0.5 s span it rises and
    falls in; MDMD and ME-TST take ``k`` about half the mean micro-expression length);
    ``method``/``flow_params``: see :class:`FlowEstimator`; ``radius``: region radius as a
    fraction of the inter-ocular distance.

    Push every frame in order (consecutive indices); the stream holds the last ``lag`` faces.
    """

    def __init__(
        self,
        fps: float,
        interval_s: float = DEFAULT_INTERVAL_S,
        method: str = "farneback",
        flow_params: Optional[Dict[str, Any]] = None,
        radius: float = DEFAULT_RADIUS,
    ) -> None:
        if not (np.isfinite(fps) and fps > 0):
            raise UserError(f"fps: must be a positive number, got {fps!r}")
        if not (np.isfinite(interval_s) and interval_s > 0):
            raise UserError(f"interval_s: must be a positive number of seconds, got {interval_s!r}")
        if not (np.isfinite(radius) and radius > 0):
            raise UserError(f"radius: must be a positive fraction of the inter-ocular distance, got {radius!r}")
        self.fps = float(fps)
        self.interval_s = float(interval_s)
        self.radius = float(radius)
        self.flow = FlowEstimator(method, flow_params)
        self.lag = motion_lag(self.interval_s, self.fps)
        self.dim = len(REGION_NAMES) * len(STATS)
        self._reset()

    def _reset(self) -> None:
        # (index, grey crop or None, landmarks or None) of the last ``lag`` frames.
        self._buffer: Deque[Tuple[int, Optional[np.ndarray], Optional[np.ndarray]]] = collections.deque(maxlen=self.lag)
        self._next_index: Optional[int] = None
        self._last_cut: Optional[int] = None

    def settings(self) -> Dict[str, Any]:
        """Everything that changes the features, for a cache key. The frame rate is the
        video's, not a setting: the lag in frames follows from it and ``interval_s``."""
        return {
            "kind": "facial_motion",
            "version": 1,
            "interval_s": self.interval_s,
            "radius": self.radius,
            "flow": self.flow.settings(),
            "regions": {r: [list(a) for a in REGIONS[r]] for r in REGION_NAMES},
            "stats": list(STATS),
            "units": "percent_inter_ocular_distance",
        }

    @staticmethod
    def feature_names() -> List[str]:
        return feature_names()

    def push(
        self,
        index: int,
        aligned_gray: Optional[np.ndarray],
        aligned_landmarks: Optional[np.ndarray],
        cut: bool = False,
    ) -> Tuple[np.ndarray, bool]:
        """Add frame ``index`` and return its ``(features (dim,) float32, valid)``.

        ``aligned_gray``: ``(S, S)`` uint8 (or BGR ``(S, S, 3)``), None when no face was
        found; ``aligned_landmarks``: ``(68, 2)`` crop pixels, or None; ``cut``: a shot cut
        lies just before this frame (it is the first of a new shot). ``valid`` is False, and
        the features all zero, when this frame or the one ``lag`` frames earlier has no face
        (or unusable landmarks), when a cut lies after that earlier frame, and for the first
        ``lag`` frames.
        """
        index = int(index)
        if self._next_index is not None and index != self._next_index:
            raise ValueError(f"frame {index} pushed, expected frame {self._next_index}: push every frame, in order")
        self._next_index = index + 1
        if cut:
            self._last_cut = index
        gray = None
        landmarks = None
        if aligned_gray is not None and aligned_landmarks is not None:
            gray = np.asarray(aligned_gray)
            if gray.ndim == 3:
                gray = cv2.cvtColor(gray, cv2.COLOR_BGR2GRAY)
            if gray.ndim != 2 or gray.dtype != np.uint8:
                raise ValueError(f"frame {index}: aligned face must be a 2-D uint8 grey image, got {gray.dtype} {gray.shape}")
            landmarks = np.asarray(aligned_landmarks, dtype=np.float64)
            if landmarks.shape != (lm68.NUM_LANDMARKS, 2):
                raise ValueError(f"frame {index}: landmarks must be (68, 2), got {landmarks.shape}")
            if not np.all(np.isfinite(landmarks)):
                gray = landmarks = None
        reference = self._buffer[0] if len(self._buffer) == self.lag else None
        self._buffer.append((index, gray, landmarks))

        features = np.zeros(self.dim, dtype=np.float32)
        if reference is None or gray is None:
            return features, False
        ref_index, ref_gray, ref_landmarks = reference
        if ref_gray is None or (self._last_cut is not None and self._last_cut > ref_index):
            return features, False
        if ref_gray.shape != gray.shape:
            raise ValueError(f"frame {index}: face crop is {gray.shape}, frame {ref_index}'s was {ref_gray.shape}")
        pooled = _region_motion(self.flow(ref_gray, gray), ref_landmarks, self.radius)
        if pooled is None:
            return features, False
        return pooled.reshape(-1), True

    def state_dict(self) -> Dict[str, Any]:
        """JSON-ready state (the last ``lag`` crops, compressed): loading it into a stream with
        the same settings and fps continues exactly where this one stopped."""
        frames: List[Dict[str, Any]] = []
        for index, gray, landmarks in self._buffer:
            if gray is None:
                frames.append({"index": index})
            else:
                frames.append({
                    "index": index,
                    "shape": list(gray.shape),
                    "gray": _encode_image(gray),
                    "landmarks": landmarks.tolist(),
                })
        return {
            "settings": self.settings(),
            "lag": self.lag,
            "next_index": self._next_index,
            "last_cut": self._last_cut,
            "frames": frames,
        }

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        if state["settings"] != self.settings() or state["lag"] != self.lag:
            raise ValueError("motion stream state was saved with other settings or another frame rate")
        self._reset()
        self._next_index = state["next_index"]
        self._last_cut = state["last_cut"]
        for frame in state["frames"]:
            if "gray" in frame:
                self._buffer.append((
                    int(frame["index"]),
                    _decode_image(frame["gray"], frame["shape"]),
                    np.asarray(frame["landmarks"], dtype=np.float64),
                ))
            else:
                self._buffer.append((int(frame["index"]), None, None))


def motion_features(
    aligned: np.ndarray,
    landmarks: np.ndarray,
    present: np.ndarray,
    cuts: Optional[np.ndarray],
    fps: float,
    **stream_kwargs: Any,
) -> Tuple[np.ndarray, np.ndarray]:
    """Motion features of a whole video held in memory.

    ``aligned``: ``(T, S, S)`` uint8 grey crops; ``landmarks``: ``(T, 68, 2)`` crop pixels;
    ``present``: ``(T,)`` bool, whether frame t has a face; ``cuts``: ``(T,)`` bool, True
    where frame t is the first of a new shot (or None: one shot); other arguments as
    :class:`FacialMotionStream`. Returns ``features (T, D) float32`` and ``valid (T,) bool``.
    """
    stream = FacialMotionStream(fps, **stream_kwargs)
    n = len(aligned)
    present = np.asarray(present, dtype=bool)
    cut_flags = np.zeros(n, dtype=bool) if cuts is None else np.asarray(cuts, dtype=bool)
    if len(landmarks) != n or len(present) != n or len(cut_flags) != n:
        raise ValueError("aligned, landmarks, present and cuts must have one entry per frame")
    features = np.zeros((n, stream.dim), dtype=np.float32)
    valid = np.zeros(n, dtype=bool)
    for t in range(n):
        face = present[t]
        features[t], valid[t] = stream.push(t, aligned[t] if face else None, landmarks[t] if face else None, bool(cut_flags[t]))
    return features, valid
