"""Every choice of the FEDN model in one dataclass (the derivations: docs/fedn_internals.md)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, Optional, Tuple

from ...data.annotations import EMOTIONS4 as EMOTION_NAMES
from ...data.annotations import EXPRESSION_TYPES as TYPE_NAMES

Range = Tuple[float, float]

DEFAULT_WINDOW = 1024
"""Model steps per temporal window, in training (``data.window``) and in detection."""
DEFAULT_THRESHOLD = 0.3
"""Detection score threshold of every type until validation chooses one (or when it has no expressions)."""


@dataclass
class FEDNConfig:
    """Hyper-parameters of :class:`~visionattn.models.fedn.model.FEDN`.

    Defaults target 30 fps face videos; docs/fedn_internals.md derives the ones that matter.

    Args:
        feature_dim: per-frame feature size D; ``None`` until known (training takes it from the
            features, and checks a given value against them).
        input_norm: ``"sequence"``: standardize every feature channel over the valid steps of
            each input sequence before the embedding; ``"none"``: the features as they are.
        embed_dim: channels C of every pyramid level.
        num_heads: heads of every attention layer.
        segment_length: frames per segment of the segment attention.
        segment_weighting: ``"softmax"`` or ``"sigmoid"`` weights over a segment's frames.
        window_size: sliding-window attention span w (step i attends to ``|i - j| <= w // 2``).
        score_kernel_size: kernel of the frame-scoring conv.
        num_levels: pyramid levels at strides ``1, 2, ..., 2**(num_levels - 1)``; at least 3.
        downsample: ``"maxpool"`` or ``"conv"`` between the neck's further levels.
        mlp_ratio: hidden width of the transformer MLPs, in multiples of C.
        head_num_convs: conv layers per head branch.
        head_kernel_size: kernel of the head convs.
        head_attention: a shared attention block before the head branches.
        dropout: dropout of the attention and MLP layers.
        use_segment_attention: ablation; ``False`` makes segment attention and fusion the identity.
        use_window_attention: ablation; ``False`` makes the frame scoring the identity and every
            windowed self-attention a residual depthwise-separable conv of kernel ``window_size``.
        attention: ``"window"``, or ``"full"`` ``T x T`` attention (the scaling comparison only).
        type_names: expression types, the type vocabulary (micro, macro).
        emotion_names: emotion classes, the emotion vocabulary.
        regression_ranges: per level, the range of a point's largest distance to its target's
            boundaries (frames) that the level regresses.
        center_sample_radius: points within this many strides of a target's centre are positive.
        focal_alpha: sigmoid focal loss alpha of the type logits.
        focal_gamma: sigmoid focal loss gamma of the type logits.
        emotion_loss: ``"ce"`` or ``"focal"`` on positive points.
        type_loss_weight: weight of the type loss.
        reg_loss_weight: weight of the boundary (DIoU) loss.
        emotion_loss_weight: weight of the emotion loss.
        loss_norm_init: initial value of the EMA positive-count normaliser.
        loss_norm_momentum: momentum of that normaliser.
        prior_prob: initial type probability (the type logits' bias).
        pre_nms_threshold: type probability a point needs to be decoded.
        pre_nms_topk: points decoded per level at most.
        nms_method: ``"soft"`` (Gaussian Soft-NMS), ``"hard"`` or ``"none"``.
        nms_sigma: Soft-NMS Gaussian sigma.
        nms_iou_threshold: hard-NMS IoU threshold.
        nms_class_agnostic: suppress across types (else micro and macro separately).
        nested_cover: drop a detection with at least this fraction of its span inside a
            higher-scoring one of the other type that it overlaps with IoU < 0.5; ``None`` keeps it.
        score_floor: score floor after NMS (not the detection ``thresholds`` chosen on validation).
        max_detections: detections kept per video at most.
        score_with_emotion: multiply the type probability by the emotion confidence.
        min_duration: decoded spans shorter than this (frames) are dropped before NMS.
    """

    # Input.
    feature_dim: Optional[int] = None

    # Temporal model.
    input_norm: Literal["none", "sequence"] = "none"
    embed_dim: int = 256
    num_heads: int = 4
    segment_length: int = 16
    segment_weighting: Literal["softmax", "sigmoid"] = "softmax"
    window_size: int = 19
    score_kernel_size: int = 3
    num_levels: int = 6
    downsample: Literal["maxpool", "conv"] = "maxpool"
    mlp_ratio: int = 4
    head_num_convs: int = 2
    head_kernel_size: int = 3
    head_attention: bool = True
    dropout: float = 0.0

    # Ablations and the scaling comparison.
    use_segment_attention: bool = True
    use_window_attention: bool = True
    attention: Literal["window", "full"] = "window"

    # Classes.
    type_names: Tuple[str, ...] = TYPE_NAMES
    emotion_names: Tuple[str, ...] = EMOTION_NAMES

    # Label assignment.
    regression_ranges: Tuple[Range, ...] = field(
        default_factory=lambda: ((0, 4), (4, 8), (8, 16), (16, 32), (32, 64), (64, math.inf))
    )
    center_sample_radius: float = 1.5

    # Losses.
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    emotion_loss: Literal["ce", "focal"] = "ce"
    type_loss_weight: float = 1.0
    reg_loss_weight: float = 1.0
    emotion_loss_weight: float = 1.0
    loss_norm_init: float = 100.0
    loss_norm_momentum: float = 0.9
    prior_prob: float = 0.01

    # Post-processing.
    pre_nms_threshold: float = 0.001
    pre_nms_topk: int = 2000
    nms_method: Literal["soft", "hard", "none"] = "soft"
    nms_sigma: float = 0.5
    nms_iou_threshold: float = 0.1
    nms_class_agnostic: bool = False
    nested_cover: Optional[float] = 0.8
    score_floor: float = 0.001
    max_detections: int = 200
    score_with_emotion: bool = False
    min_duration: float = 0.5

    @classmethod
    def from_dict(cls, data: dict) -> "FEDNConfig":
        """A config from its ``asdict`` form, written by this or an earlier visionattn (keys
        renamed since, see :data:`RENAMED_KEYS`, are read under their new names)."""
        return cls(**renamed_keys(data))

    def __setstate__(self, state: dict) -> None:
        # configs pickled into older Lightning checkpoints' hyper-parameters
        self.__dict__.update(renamed_keys(state))

    def __post_init__(self) -> None:
        self.regression_ranges = tuple((float(lo), float(hi)) for lo, hi in self.regression_ranges)
        if len(self.regression_ranges) != self.num_levels:
            raise ValueError(
                f"regression_ranges has {len(self.regression_ranges)} entries, num_levels is {self.num_levels}"
            )
        if self.num_levels < 3:
            # Levels 0-2 come from the sliding-window attention stage (stride 1 + two stride-2 blocks).
            raise ValueError(f"num_levels must be >= 3, got {self.num_levels}")
        if self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}")
        if self.attention not in ("window", "full"):
            raise ValueError(f"attention must be 'window' or 'full', got {self.attention!r}")
        if self.nms_method not in ("soft", "hard", "none"):
            raise ValueError(f"nms_method must be 'soft', 'hard' or 'none', got {self.nms_method!r}")
        if self.emotion_loss not in ("ce", "focal"):
            raise ValueError(f"emotion_loss must be 'ce' or 'focal', got {self.emotion_loss!r}")
        if self.downsample not in ("maxpool", "conv"):
            raise ValueError(f"downsample must be 'maxpool' or 'conv', got {self.downsample!r}")
        if self.input_norm not in ("none", "sequence"):
            raise ValueError(f"input_norm must be 'none' or 'sequence', got {self.input_norm!r}")
        if self.segment_weighting not in ("softmax", "sigmoid"):
            raise ValueError(f"segment_weighting must be 'softmax' or 'sigmoid', got {self.segment_weighting!r}")
        if self.nested_cover is not None and not 0 < self.nested_cover <= 1:
            raise ValueError(f"nested_cover must be in (0, 1] or null, got {self.nested_cover!r}")

    @property
    def num_types(self) -> int:
        return len(self.type_names)

    @property
    def num_emotions(self) -> int:
        return len(self.emotion_names)

    @property
    def token_mixer(self) -> str:
        """Kind of every self-attention layer: ``"window"``, ``"full"`` or ``"conv"`` (ablation)."""
        if not self.use_window_attention:
            return "conv"
        return self.attention

    @property
    def strides(self) -> Tuple[int, ...]:
        """Stride in frames of each pyramid level: ``(1, 2, 4, ...)``."""
        return tuple(2 ** level for level in range(self.num_levels))


RENAMED_KEYS = {"min_score": "score_floor"}
"""FEDNConfig keys renamed since records were first written: old name -> new name."""


def renamed_keys(data: dict) -> dict:
    """``data`` with the old names of :data:`RENAMED_KEYS` replaced by the new ones."""
    return {RENAMED_KEYS.get(k, k): v for k, v in data.items()}
