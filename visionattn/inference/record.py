"""The record of a trained detector: the one contract between training and ``visionattn detect``.

Training writes it into every checkpoint (under :data:`RECORD_KEY`); detection reads nothing
else from a checkpoint. It is typed and versioned, so a change on either side is caught here
with a one-line message instead of a silently different model. A record can also stand alone
in a small file (:meth:`DetectorRecord.save`), which is how a model ships without a Lightning
checkpoint.

Version history:
    1: model config, feature settings, per-type thresholds, window, frame rate, FEDN weights.
    2: feature settings gain the face front end and the motion / appearance streams (a version 1
       record's features would now read as the new defaults, so it is refused); ``info``.
       Later, still 2 (additive): ``contract``, the feature contract (model rate, motion interval
       and lag, column layout) written out; a record without it derives it from its features,
       frame rate and model input width, and one with it must agree with them.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, Tuple, Union

import torch

from ..features.contract import FeatureContract
from ..features.settings import FeatureSettings
from ..models.fedn.config import FEDNConfig
from ..models.fedn.model import FEDN
from ..utils import UserError, atomic_path

RECORD_KEY = "visionattn_detector"
RECORD_VERSION = 2


@dataclass
class DetectorRecord:
    """What a trained FEDN detector is, independently of how it was trained.

    ``model``: the FEDN config (its ``type_names`` and ``emotion_names`` are the label
    vocabularies); ``features``: how its per-frame features are made; ``thresholds``: score
    threshold per expression type, chosen on validation subjects; ``window``: temporal window in
    model steps; ``fps``: the frame rate the model saw (videos are resampled to it);
    ``state_dict``: FEDN's weights; ``info``: free-form provenance (how and on what it was
    trained, its held-out figures), shown by ``visionattn detect`` and written into its JSON.
    """

    model: FEDNConfig
    features: FeatureSettings
    thresholds: Dict[str, float]
    window: int
    fps: float
    state_dict: Dict[str, torch.Tensor] = field(repr=False)
    info: Dict[str, Any] = field(default_factory=dict)
    version: int = RECORD_VERSION

    @property
    def type_names(self) -> Tuple[str, ...]:
        return tuple(self.model.type_names)

    @property
    def emotion_names(self) -> Tuple[str, ...]:
        return tuple(self.model.emotion_names)

    @property
    def contract(self) -> FeatureContract:
        """The features this model reads: its feature settings at ``fps``, rows ``feature_dim`` wide."""
        return FeatureContract.for_rows(self.features, self.fps, int(self.model.feature_dim))

    def build_model(self, device: str = "cpu") -> FEDN:
        """The FEDN network with the recorded weights, in eval mode."""
        model = FEDN(self.model)
        model.load_state_dict(self.state_dict)
        return model.to(device).eval()

    def to_dict(self) -> dict:
        """Plain data (dicts, lists, numbers, strings, tensors): loads with ``weights_only=True``."""
        return {
            "version": self.version,
            "model": asdict(self.model),
            "features": asdict(self.features),
            "thresholds": {k: float(v) for k, v in self.thresholds.items()},
            "window": int(self.window),
            "fps": float(self.fps),
            "contract": self.contract.to_dict(),
            "state_dict": {k: v.detach().cpu() for k, v in self.state_dict.items()},
            "info": dict(self.info),
        }

    @classmethod
    def from_dict(cls, data: object, where: Union[str, Path]) -> "DetectorRecord":
        """Inverse of :meth:`to_dict`; ``where`` names the file in errors."""
        if not isinstance(data, dict) or "version" not in data:
            raise UserError(f"{where}: no detector record; it was written before visionattn recorded one. "
                            f"Retrain it with `visionattn train fit` (or run `visionattn detect` without "
                            f"--checkpoint to use the bundled model)")
        if data["version"] != RECORD_VERSION:
            raise UserError(f"{where}: detector record version {data['version']} is not {RECORD_VERSION}, the one "
                            f"this visionattn reads; use the visionattn release that wrote it, or retrain")
        try:
            model = FEDNConfig.from_dict(data["model"])
            features = FeatureSettings.from_dict(data["features"])
            record = cls(model=model, features=features, thresholds=dict(data["thresholds"]),
                         window=int(data["window"]), fps=float(data["fps"]), state_dict=data["state_dict"],
                         info=dict(data.get("info") or {}))
        except (KeyError, TypeError, ValueError) as err:
            raise UserError(f"{where}: malformed detector record ({type(err).__name__}: {err})") from None
        try:
            derived = record.contract.to_dict()
        except UserError as err:
            raise UserError(f"{where}: malformed detector record ({err})") from None
        stored = data.get("contract")
        if stored is not None and stored != derived:
            raise UserError(f"{where}: detector record's feature contract {stored} does not match its features, "
                            f"frame rate and model ({derived})")
        if set(record.thresholds) != set(record.type_names):
            raise UserError(f"{where}: detector record thresholds {sorted(record.thresholds)} do not match its "
                            f"types {list(record.type_names)}")
        return record

    def save(self, path: Union[str, Path]) -> Path:
        """Write the record alone (no optimizer state, no Lightning keys) atomically."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path, suffix=path.suffix or ".pt") as tmp:
            torch.save({RECORD_KEY: self.to_dict()}, tmp)
        return path


def read_record(path: Union[str, Path]) -> DetectorRecord:
    """The detector record of a training checkpoint (``.ckpt``) or of a standalone record file."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p}: checkpoint not found")
    try:
        # A Lightning checkpoint also pickles its hyper-parameters (dataclasses): not weights_only.
        ckpt = torch.load(p, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means "not a checkpoint"
        raise UserError(f"{p}: not a readable checkpoint ({type(err).__name__}: {err})") from None
    if not isinstance(ckpt, dict):
        raise UserError(f"{p}: not a visionattn checkpoint")
    return DetectorRecord.from_dict(ckpt.get(RECORD_KEY), p)
