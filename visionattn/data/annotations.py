"""The expression table every loader produces, and leave-one-subject-out folds.

One row per expression. Columns (pandas dtypes):

==============  ========  ==========================================================
column          dtype     meaning
==============  ========  ==========================================================
dataset         str       ``casme2``, ``casme3a``, ``synthetic``...
subject         str       subject id as the dataset names its folder (``s15``, ``spNO.1``)
video           str       video id within the subject (``0101``, ``a``)
onset           int64     first frame of the expression (dataset's own numbering)
apex            int64     apex frame
offset          int64     last frame (inclusive)
type            str       ``micro`` or ``macro``
emotion         str       expert emotion, 4 classes: negative / positive / surprise / others
                          (empty where the dataset gives none, e.g. CAS(ME)^3 macro)
emotion_raw     str       the dataset's own expert label, lower case
self_report     str       the subject's self-reported emotion (CAS(ME)^2), else empty
aus             str       action units as written (``4+10+14``)
n_frames        int64     frames in the video
fps             float64   frame rate of the video
source          str       video frames: a folder of images or a video file
first_frame     int64     number of the video's first frame (1 for CAS(ME)^2)
row             str       where the row came from: ``file, sheet 'x', row n``
==============  ========  ==========================================================
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import pandas as pd

COLUMNS = {
    "dataset": "object", "subject": "object", "video": "object",
    "onset": "int64", "apex": "int64", "offset": "int64",
    "type": "object", "emotion": "object", "emotion_raw": "object", "self_report": "object",
    "aus": "object", "n_frames": "int64", "fps": "float64", "source": "object",
    "first_frame": "int64", "row": "object",
}
EXPRESSION_TYPES = ("micro", "macro")
EMOTIONS4 = ("negative", "positive", "surprise", "others")

# Fine-grained emotion words -> the 4-class scheme of MEGC (CAS(ME)^3 micro labels use these).
EMOTION4_MAP = {
    "anger": "negative", "angry": "negative", "disgust": "negative", "fear": "negative",
    "sad": "negative", "sadness": "negative", "contempt": "negative", "negative": "negative",
    "happy": "positive", "happiness": "positive", "positive": "positive",
    "surprise": "surprise",
    "others": "others", "other": "others", "repression": "others", "tense": "others",
}

# How to fill a missing offset (written as 0 in CAS(ME)^2): "apex" (offset := apex, the
# default), an int n (offset := apex + n), "drop" (skip the row) or "error".
MissingOffset = Union[str, int]


def to_emotion4(label: str) -> str:
    """Map a dataset's emotion word to negative / positive / surprise / others ('' if unknown)."""
    return EMOTION4_MAP.get(str(label).strip().lower(), "")


def expression_profile(n: int, onset: int, apex: int, offset: int) -> np.ndarray:
    """Intensity over ``n`` frames (0-based indices): a raised-cosine rise from ``onset`` to 1 at
    ``apex`` and fall to ``offset`` (inclusive), 0 outside. Expressions are annotated by these
    three frames only; this is the smooth shape between them."""
    a = np.zeros(n, np.float32)
    t = np.arange(n)
    rise = (t >= onset) & (t <= apex)
    a[rise] = 0.5 - 0.5 * np.cos(np.pi * (t[rise] - onset + 1) / (apex - onset + 1))
    fall = (t > apex) & (t <= offset)
    a[fall] = 0.5 + 0.5 * np.cos(np.pi * (t[fall] - apex) / (offset - apex + 1))
    return a


def make_table(rows: Sequence[dict]) -> pd.DataFrame:
    """Build a typed expression table from row dicts with the keys of ``COLUMNS``."""
    df = pd.DataFrame(list(rows), columns=list(COLUMNS))
    return df.astype(COLUMNS) if len(df) else df.astype(COLUMNS)


def fill_offset(onset: int, apex: int, offset: int, policy: MissingOffset, where: str) -> Optional[int]:
    """Resolve a missing (0) offset by ``policy``; None means drop the row."""
    if offset > 0:
        return offset
    if policy == "apex":
        return apex
    if policy == "drop":
        return None
    if policy == "error":
        from ..utils import UserError

        raise UserError(f"{where}: offset is missing (0); pass missing_offset='apex', an int, or 'drop'")
    if isinstance(policy, int) and not isinstance(policy, bool):
        return apex + policy
    raise ValueError(f"missing_offset must be 'apex', 'drop', 'error' or an int, got {policy!r}")


@dataclass(frozen=True)
class Fold:
    """One leave-one-subject-out split. Model selection (epoch, threshold) uses ``val``
    only, which is drawn from the training subjects: the test subject is never looked at."""

    test: str
    train: Tuple[str, ...]
    val: Tuple[str, ...]


def loso_folds(
    table: pd.DataFrame, val_subjects: int = 2, seed: int = 0, subjects: Optional[List[str]] = None
) -> List[Fold]:
    """Leave-one-subject-out folds over the subjects of ``table`` (or ``subjects``).

    For each held-out subject, ``val_subjects`` of the remaining subjects are set aside for
    validation (a fixed pseudo-random choice per fold, reproducible from ``seed``).
    """
    subs = sorted(subjects if subjects is not None else table["subject"].unique().tolist())
    if len(subs) < 2:
        raise ValueError("leave-one-subject-out needs at least 2 subjects")
    n_val = min(val_subjects, len(subs) - 2) if len(subs) > 2 else 0
    folds = []
    for i, test in enumerate(subs):
        rest = [s for s in subs if s != test]
        rng = np.random.default_rng([seed, i])
        val = sorted(rng.choice(rest, size=n_val, replace=False).tolist()) if n_val else []
        train = tuple(s for s in rest if s not in val)
        folds.append(Fold(test=test, train=train, val=tuple(val)))
    return folds
