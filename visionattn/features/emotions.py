"""The appearance network's 7 FER2013 classes mapped to the 4 MEGC emotion classes."""
from __future__ import annotations

from typing import Dict, Optional, Sequence

import numpy as np

from ..data.annotations import EMOTIONS4

# FER2013's classes -> the 4 MEGC classes (the CAS(ME)^3 grouping: negative = anger, disgust,
# fear, sad; positive = happy; surprise; others). FER's "neutral" is no expression of the other
# six, which MEGC files under "others".
FER_TO_MEGC: Dict[str, str] = {
    "angry": "negative", "disgust": "negative", "fear": "negative", "sad": "negative",
    "happy": "positive", "surprise": "surprise", "neutral": "others",
}


def fer_to_megc(probs7: np.ndarray, names: Optional[Sequence[str]] = None) -> np.ndarray:
    """FER probabilities ``(..., 7)`` -> MEGC probabilities ``(..., 4)`` in :data:`EMOTIONS4` order
    (negative, positive, surprise, others), by summing each group:

    negative = angry + disgust + fear + sad, positive = happy, surprise = surprise,
    others = neutral.

    ``names``: the 7 class names in the order of the last axis (default: the mini-Xception's
    ``FER_CLASSES`` = angry, disgust, fear, happy, sad, surprise, neutral). Rows summing to 1 still
    do; NaN rows stay NaN. Returns float64.
    """
    if names is None:
        from ..models.mini_xception import FER_CLASSES  # torch-heavy; only when the default is needed

        names = FER_CLASSES
    names = [n.strip().lower() for n in names]
    probs7 = np.asarray(probs7, dtype=np.float64)
    if sorted(names) != sorted(FER_TO_MEGC) or probs7.shape[-1:] != (len(names),):
        raise ValueError(f"expected the 7 FER classes {sorted(FER_TO_MEGC)} on the last axis, "
                         f"got names {names} and shape {probs7.shape}")
    # (7, 4) 0/1 matrix: column j sums the FER classes of MEGC class j.
    groups = np.array([[FER_TO_MEGC[n] == m for m in EMOTIONS4] for n in names], dtype=np.float64)
    return probs7 @ groups
