"""The FEDN detector that ships inside the package, so ``visionattn detect VIDEO`` works on
anyone's video without a checkpoint of theirs.

It is an ordinary detector record (:mod:`.record`), trained by ``tools/build_bundled_model.py``
(``make bundled-model``) with the repository's synthetic recipe and the default real-face
features (landmark front end, motion and appearance streams), on synthetic videos only: the
record's ``info`` says how, on what, and what it scored on held-out subjects. A synthetic
training set cannot teach everything a real face does; its held-out figures are synthetic ones,
and the training-free ``--method flow`` is the alternative that has learned nothing at all.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Dict

import torch

from ..utils import UserError
from .record import DetectorRecord, read_record

BUNDLED_MODEL = Path(__file__).resolve().parents[1] / "weights" / "fedn_synthetic.pt"
BUNDLED_EMOTIONS = "appearance"
"""Where the bundled model's emotions come from (``ExpressionDetector(emotions=)``): its emotion
head learned the synthetic generator's labels, which no real face carries, so each detection is
labelled by what the appearance network reads at its apex against the face's own neutral."""


def bundled_record() -> DetectorRecord:
    """The bundled detector; a one-line error if the package was installed without it."""
    if not BUNDLED_MODEL.is_file():
        raise UserError(f"{BUNDLED_MODEL}: the bundled FEDN model is missing from this installation; "
                        f"reinstall visionattn, rebuild it with `make bundled-model`, or give --checkpoint")
    return read_record(BUNDLED_MODEL)


def weights_digest(state_dict: Dict[str, torch.Tensor]) -> str:
    """SHA-256 over the weights' names, shapes, dtypes and bytes, in name order: what the record's
    ``info['weights_sha256']`` states, so a test can tell that the shipped file is the one
    described."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()
