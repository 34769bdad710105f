"""The per-step curves behind a detection, for the timeline picture and ``<name>_signals.npz``.

A detector samples the video on its own grid of *model steps* (FEDN: the training frame rate;
the flow spotter: its flow pairs). :class:`TimelineSignals` holds, per step, its time, the
quantity that was thresholded (FEDN's score, or motion energy) and the appearance network's
emotion probabilities. NaN in a curve means "no value at this step" (e.g. no face) and is drawn
as a gap.

The appearance network (mini-Xception, FER2013) scores 7 classes;
:func:`visionattn.features.emotions.fer_to_megc` is the one place they are mapped to the 4 MEGC classes.
"""
from __future__ import annotations

import csv
import io
import os
import zipfile
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from ..data.annotations import EMOTIONS4
from ..features.emotions import FER_TO_MEGC, fer_to_megc
from ..models.mini_xception import FER_CLASSES
from ..utils import UserError, atomic_path, atomic_write_text

PathLike = Union[str, os.PathLike]
Threshold = Union[float, Mapping[str, float], None]



@dataclass
class TimelineSignals:
    """Per-model-step curves of one video (``T`` steps).

    Attributes:
        times_s: ``(T,)`` seconds from the start of the video of each step, increasing (the same
            clock as ``DetectedInterval.onset_s``).
        score: ``(T,)`` or ``(T, K)`` the per-step quantity the detector thresholds, or None.
            FEDN: per type, the best candidate score over the step; flow: the motion energy.
        score_names: the ``K`` names of ``score``'s columns (e.g. the types), or empty for one.
        score_label: what ``score`` is, shown on the picture ("FEDN interval score", "motion
            energy (noise units)").
        score_threshold: the level(s) ``score`` is compared with, drawn as dashed lines: one
            float, ``{name: level}`` (per type: the names of ``score_names``), or None.
        emotion_probs: ``(T, K)`` probabilities of the appearance network, or None.
        emotion_names: the ``K`` class names of ``emotion_probs`` (default: the 4 MEGC classes).
            The 7 FER classes are accepted and drawn as the 4 MEGC ones (:func:`~visionattn.features.emotions.fer_to_megc`).
        frames: ``(T,)`` int source frame number of each step, in the result's frame numbering,
            or None; not drawn, kept for people reading the npz.
        motion_energy: ``(T,)`` the flow spotter's motion energy (noise units), or None.
        face_present: ``(T,)`` bool, a face tracked on the step, or None.
        face_boxes: ``(T, 4)`` face box ``(x, y, w, h)`` in source pixels (NaN without), or None.
    """

    times_s: np.ndarray
    score: Optional[np.ndarray] = None
    score_label: str = "score"
    score_threshold: Threshold = None
    emotion_probs: Optional[np.ndarray] = None
    emotion_names: Tuple[str, ...] = EMOTIONS4
    frames: Optional[np.ndarray] = None
    score_names: Tuple[str, ...] = ()
    motion_energy: Optional[np.ndarray] = None
    face_present: Optional[np.ndarray] = None
    face_boxes: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        self.times_s = np.asarray(self.times_s, dtype=np.float64).reshape(-1)
        t = len(self.times_s)
        self.score_names = tuple(str(n) for n in self.score_names)
        if self.score is not None:
            self.score = np.asarray(self.score, dtype=np.float64)
            want = (t, len(self.score_names)) if self.score.ndim == 2 else (t,)
            if self.score.shape != want:
                raise ValueError(f"score has shape {self.score.shape}; expected {want} for times_s and score_names")
        for name, width, dtype in (("motion_energy", None, np.float64), ("face_present", None, bool),
                                   ("face_boxes", 4, np.float64)):
            value = getattr(self, name)
            if value is not None:
                value = np.asarray(value, dtype=dtype)
                want = (t,) if width is None else (t, width)
                if value.shape != want:
                    raise ValueError(f"{name} has shape {value.shape}; expected {want}")
                setattr(self, name, value)
        if self.emotion_probs is not None:
            self.emotion_probs = np.asarray(self.emotion_probs, dtype=np.float64)
            self.emotion_names = tuple(str(n) for n in self.emotion_names)
            if self.emotion_probs.shape != (t, len(self.emotion_names)):
                raise ValueError(f"emotion_probs has shape {self.emotion_probs.shape}; expected "
                                 f"({t}, {len(self.emotion_names)}) for times_s and emotion_names")
        if self.frames is not None:
            self.frames = np.asarray(self.frames, dtype=np.int64).reshape(-1)
            if self.frames.shape != (t,):
                raise ValueError(f"frames has shape {self.frames.shape}; expected ({t},) like times_s")

    def score_columns(self) -> Dict[str, np.ndarray]:
        """``score`` as ``{name: (T,) curve}`` (one curve named ``score_label`` when 1-D)."""
        if self.score is None:
            return {}
        if self.score.ndim == 1:
            return {self.score_label: self.score}
        return {name: self.score[:, k] for k, name in enumerate(self.score_names)}

    def thresholds(self) -> Dict[str, float]:
        """``score_threshold`` as ``{label: level}`` (label ``"threshold"`` for a single float)."""
        if self.score_threshold is None:
            return {}
        if isinstance(self.score_threshold, Mapping):
            return {str(k): float(v) for k, v in self.score_threshold.items()}
        return {"threshold": float(self.score_threshold)}

    def megc_probs(self) -> Tuple[Optional[np.ndarray], Tuple[str, ...]]:
        """``(probs (T, K'), names)`` as drawn: 7 FER classes become the 4 MEGC classes, other
        class sets are returned as they are."""
        if self.emotion_probs is None:
            return None, ()
        names = tuple(n.strip().lower() for n in self.emotion_names)
        if sorted(names) == sorted(FER_TO_MEGC):
            return fer_to_megc(self.emotion_probs, names), EMOTIONS4
        return self.emotion_probs, names

    def frame_table(self) -> Tuple[List[str], List[list]]:
        """``(header, rows)``, one row per step: ``frame``, ``time_s``, ``face`` (1/0), the box
        ``x, y, w, h``, ``motion_energy``, the score columns (``score_<name>`` per
        ``score_names``, or ``score``), the 7 FER probabilities ``fer_<class>`` and the 4 MEGC
        ones ``megc_<class>``; a value not known on a step is empty."""
        t = len(self.times_s)
        nan = np.full(t, np.nan)
        columns: Dict[str, np.ndarray] = {
            "frame": self.frames if self.frames is not None else np.arange(t),
            "time_s": self.times_s,
            "face": (self.face_present.astype(int) if self.face_present is not None else nan)}
        boxes = self.face_boxes if self.face_boxes is not None else np.full((t, 4), np.nan)
        columns.update({name: boxes[:, k] for k, name in enumerate(("x", "y", "w", "h"))})
        columns["motion_energy"] = self.motion_energy if self.motion_energy is not None else nan
        if self.score is not None and self.score.ndim == 2 and len(self.score_names) > 1:
            columns.update({f"score_{name}": curve for name, curve in self.score_columns().items()})
        else:
            columns["score"] = self.score.reshape(t) if self.score is not None else nan
        fer = self.emotion_probs is not None and tuple(n.lower() for n in self.emotion_names) == FER_CLASSES
        for k, name in enumerate(FER_CLASSES):
            columns[f"fer_{name.lower()}"] = self.emotion_probs[:, k] if fer else nan
        megc, _ = self.megc_probs()
        for k, name in enumerate(EMOTIONS4):
            columns[f"megc_{name}"] = megc[:, k] if megc is not None and megc.shape[1] == 4 else nan
        rows = [[_cell(columns[c][i]) for c in columns] for i in range(t)]
        return list(columns), rows

    def write_csv(self, path: PathLike) -> None:
        """Write :meth:`frame_table` as CSV (atomically), for R or a spreadsheet."""
        header, rows = self.frame_table()
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
        atomic_write_text(path, text.getvalue())

    def save_npz(self, path: PathLike) -> None:
        """Write the curves to ``path`` (``.npz``, atomically). Keys: ``times_s``, and those of
        ``score`` (+ ``score_names``), ``score_label``, ``threshold_names`` + ``threshold_values``,
        ``emotion_probs`` + ``emotion_names``, ``frames``, ``motion_energy``, ``face_present``,
        ``face_boxes`` that are set."""
        arrays: Dict[str, np.ndarray] = {"times_s": self.times_s, "score_label": np.array(self.score_label)}
        if self.score is not None:
            arrays["score"] = self.score
            arrays["score_names"] = np.array(self.score_names, dtype=str)
        for name in ("motion_energy", "face_present", "face_boxes"):
            if getattr(self, name) is not None:
                arrays[name] = getattr(self, name)
        levels = self.thresholds()
        if levels:
            arrays["threshold_names"] = np.array(list(levels), dtype=str)
            arrays["threshold_values"] = np.array(list(levels.values()), dtype=np.float64)
            # a bare float stays a float on reading
            arrays["threshold_is_scalar"] = np.array(not isinstance(self.score_threshold, Mapping))
        if self.emotion_probs is not None:
            arrays["emotion_probs"] = self.emotion_probs
            arrays["emotion_names"] = np.array(self.emotion_names, dtype=str)
        if self.frames is not None:
            arrays["frames"] = self.frames
        with atomic_path(path, suffix=".npz") as tmp:
            with open(tmp, "wb") as f:  # a file object: numpy would otherwise append .npz to odd names
                np.savez_compressed(f, **arrays)

    @classmethod
    def load_npz(cls, path: PathLike) -> "TimelineSignals":
        """Read what :meth:`save_npz` wrote. Raises ``UserError`` naming the file (and key)."""
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except FileNotFoundError:
            raise UserError(f"{path}: no such signals file") from None
        except (OSError, ValueError, zipfile.BadZipFile) as err:
            raise UserError(f"{path}: not a signals .npz file ({err})") from None
        if "times_s" not in arrays:
            raise UserError(f"{path}: key 'times_s' missing; not a signals file")
        threshold: Threshold = None
        if "threshold_values" in arrays:
            values = [float(v) for v in arrays["threshold_values"]]
            names = [str(n) for n in arrays.get("threshold_names", ["threshold"] * len(values))]
            scalar = bool(arrays.get("threshold_is_scalar", False)) and len(values) == 1
            threshold = values[0] if scalar else dict(zip(names, values))
        try:
            return cls(
                times_s=arrays["times_s"], score=arrays.get("score"),
                score_label=str(arrays.get("score_label", "score")), score_threshold=threshold,
                emotion_probs=arrays.get("emotion_probs"),
                emotion_names=tuple(str(n) for n in arrays.get("emotion_names", EMOTIONS4)),
                frames=arrays.get("frames"), score_names=tuple(str(n) for n in arrays.get("score_names", ())),
                motion_energy=arrays.get("motion_energy"), face_present=arrays.get("face_present"),
                face_boxes=arrays.get("face_boxes"),
            )
        except ValueError as err:
            raise UserError(f"{path}: {err}") from None


def _cell(value) -> str:
    """A CSV cell: integers as they are, reals to 6 significant digits, NaN empty."""
    if isinstance(value, (int, np.integer, bool, np.bool_)):
        return str(int(value))
    return "" if not np.isfinite(value) else f"{float(value):.6g}"
