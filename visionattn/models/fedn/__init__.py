"""FEDN: facial expression detection in long videos, split like a detection codebase.

``config`` (every choice), ``segment_attention``,
``window_attention`` (stage 1 and the attention layers), ``neck`` (temporal pyramid), ``heads``,
``targets`` (label assignment), ``losses``, ``postprocess`` (decoding, NMS) and ``model``
(wiring); the optional frame encoder (2D CNN per frame) is
:mod:`visionattn.features.frame_encoder`. Import explicitly: ``from visionattn.models.fedn import FEDN, FEDNConfig``.
"""
from .config import EMOTION_NAMES, TYPE_NAMES, FEDNConfig
from .model import FEDN

__all__ = ["EMOTION_NAMES", "TYPE_NAMES", "FEDN", "FEDNConfig"]
