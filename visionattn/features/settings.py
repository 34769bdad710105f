"""How per-frame features are made: one dataclass, whose fields are the features' cache key."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

from ..data.faces import FacePipeline
from ..utils import UserError


@dataclass
class EncoderPretraining:
    """How the frame encoder learns expressions before it is frozen (``features.pretrain``).

    ``steps`` of AdamW (one-cycle schedule, peak ``lr``) on batches of ``batch_size`` face
    crops, ``expression_fraction`` of each batch drawn from frames inside an expression
    (they are a few percent of a long video). Augmentation: random shift (``shift`` of the
    crop side), scale and rotation, mirror image, brightness and contrast, so the encoder
    learns the face's movement, not one subject's look.
    """

    steps: int = 300
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.05
    expression_fraction: float = 0.5
    shift: float = 0.04
    val_stride: int = 3  # validation scores every n-th frame of the validation subjects


@dataclass
class FeatureSettings:
    """How per-frame features are made. Every field is part of the cache key.

    ``backbone``: timm model name of the frozen frame encoder (``resnet18``,
    ``resnet18_mca_e``...); ``checkpoint_path``: its local weights (None: a fixed random
    initialisation from ``seed``, as no weights are ever downloaded); ``face_size``: crop side
    fed to the encoder; ``face_margin``: fraction of the face box added on each side;
    ``detect_every``: run the face detector every n frames and track the box in between;
    ``pool_grid``: average-pool the encoder's last map to a ``g x g`` grid (``D = C g^2``);
    ``dtype``: how features are stored; ``pretrain``: first train the encoder to recognise
    expressions on the training subjects' frames (:mod:`visionattn.features.pretraining`),
    starting from ``checkpoint_path`` or the random initialisation.
    """

    backbone: str = "resnet18"
    checkpoint_path: Optional[str] = None
    face_size: int = 112
    face_margin: float = 0.2
    detect_every: int = 5
    pool_grid: int = 1
    seed: int = 0
    dtype: str = "float16"
    pretrain: Optional[EncoderPretraining] = None

    def face_pipeline(self) -> FacePipeline:
        """A fresh face pipeline (one per video) making the crops these settings describe."""
        return FacePipeline(size=self.face_size, margin=self.face_margin, detect_every=self.detect_every)

    def crops_key(self) -> dict:
        """Cache key of the face crops alone (shared by every encoder that reads them)."""
        return {"face_crops": self.face_pipeline().settings()}

    def key_settings(self) -> dict:
        """Cache key of the features."""
        d = asdict(self)
        # Options at their old defaults leave the key as it was, so existing caches stay valid.
        if d["pool_grid"] == 1:
            del d["pool_grid"]
        if d["pretrain"] is None:
            del d["pretrain"]
        if self.checkpoint_path:  # the file's identity, not just its name
            p = Path(self.checkpoint_path)
            if not p.is_file():
                raise UserError(f"{p}: frame-encoder checkpoint not found")
            d["checkpoint_stat"] = [p.stat().st_size, int(p.stat().st_mtime)]
        return d

    @classmethod
    def from_dict(cls, data: dict) -> "FeatureSettings":
        """The inverse of :func:`dataclasses.asdict` (``pretrain`` back to its dataclass)."""
        data = dict(data)
        if isinstance(data.get("pretrain"), dict):
            data["pretrain"] = EncoderPretraining(**data["pretrain"])
        return cls(**data)
