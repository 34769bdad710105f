"""FEDN: end-to-end facial expression detection (spotting + emotion recognition) in long videos.

Pipeline (Fang et al., 2025, with ActionFormer's choices where the paper is silent)::

    frames (B, T, 3, H, W) --frame encoder--> features (B, T, D)         [optional]
    features --conv embedding--> (B, C, T)
             --SegmentAttention--> (B, C, T)                              [ablation: identity]
             --SlidingWindowAttention--> levels at strides 1, 2, 4
             --TemporalPyramidNeck--> num_levels levels (B, C, ceil(T / 2**l))
             --FEDNHeads--> per level: type logits, emotion logits, start/end distances
"""
from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Sequence

import torch
from torch import Tensor, nn

from .config import FEDNConfig
from .heads import FEDNHeads
from .losses import FEDNLoss
from .neck import TemporalPyramidNeck
from .postprocess import postprocess
from .segment_attention import SegmentAttention
from .window_attention import ConvBlock, SlidingWindowAttention


def standardize_over_time(x: Tensor, mask: Tensor, eps: float = 1e-5) -> Tensor:
    """Each channel of each sequence to zero mean and unit variance over its valid steps.

    ``(B, D, T), (B, T) -> (B, D, T)``, padding stays zero. What stays constant in a video (the
    person, the camera, the lighting) leaves the features; what changes over time (expressions)
    is what the model sees, on a common scale across subjects.
    """
    m = mask[:, None].to(x.dtype)
    n = m.sum(dim=2, keepdim=True).clamp(min=1)
    mean = (x * m).sum(dim=2, keepdim=True) / n
    var = ((x - mean).square() * m).sum(dim=2, keepdim=True) / n
    return (x - mean) * torch.rsqrt(var + eps) * m


class FEDN(nn.Module):
    """The FEDN network; every choice comes from a :class:`FEDNConfig`.

    The main entry is :meth:`temporal`, the temporal part alone on precomputed per-frame
    features, which is what a benchmark or a long-video tool calls after extracting features
    once. Given an ``encoder`` (any module ``(N, 3, H, W) -> (N, D)`` with a ``num_features``
    attribute, such as :class:`visionattn.features.frame_encoder.FrameEncoder`),
    :meth:`forward_features` also takes face frames, for end-to-end use::

        model = FEDN(FEDNConfig(feature_dim=512))
        outputs = model.temporal(features, mask)      # features (B, T, D), mask (B, T) bool
        losses = model.loss(outputs, gt_list)         # losses["loss"].backward()
        detections = model.eval().predict(features, mask)

    ``T`` is arbitrary (no multiple of anything is needed); padding must be at the end of each
    sequence, marked ``False`` in ``mask``, and does not change the outputs of the valid steps.
    With ``attention="window"`` (default) time and memory are linear in ``T``.

    Ground truth for :meth:`loss`: one dict per batch item with ``segments`` ``(N, 2)`` float
    ``[onset, offset]`` (inclusive frame indices), ``types`` ``(N,)`` long (0 micro, 1 macro) and
    ``emotions`` ``(N,)`` long (index into ``config.emotion_names``, ``-1`` for an interval without
    emotion label: it then trains spotting only); ``N`` may be 0.

    :meth:`predict` returns one dict per batch item with ``onset``, ``offset`` ``(K,)`` long
    (inclusive frames in ``[0, L - 1]``, ``L`` the valid length), ``type`` ``(K,)`` long,
    ``emotion`` ``(K,)`` long and ``score`` ``(K,)`` float, by descending score.
    """

    def __init__(self, config: FEDNConfig, encoder: Optional[nn.Module] = None) -> None:
        super().__init__()
        self.config = config
        if config.feature_dim is None:
            raise ValueError("config.feature_dim is None: give the per-frame feature size")
        self.encoder = encoder
        if encoder is not None and encoder.num_features != config.feature_dim:
            raise ValueError(f"the frame encoder gives {encoder.num_features}-d features, "
                             f"config.feature_dim is {config.feature_dim}")
        dim, mixer = config.embed_dim, config.token_mixer
        self.embed = ConvBlock(config.feature_dim, dim)
        self.segment = (
            SegmentAttention(dim, config.num_heads, config.segment_length, config.segment_weighting, config.dropout)
            if config.use_segment_attention else None
        )
        self.stage = SlidingWindowAttention(
            dim, config.num_heads, config.window_size, config.score_kernel_size, mixer, config.mlp_ratio, config.dropout
        )
        self.neck = TemporalPyramidNeck(
            dim, config.num_levels, len(self.stage.down) + 1, config.num_heads, config.window_size, mixer,
            config.downsample, config.mlp_ratio, config.dropout,
        )
        self.heads = FEDNHeads(
            dim, config.num_levels, config.num_types, config.num_emotions, config.head_num_convs,
            config.head_kernel_size, mixer if config.head_attention else None, config.num_heads,
            config.window_size, config.mlp_ratio, config.dropout, config.prior_prob,
        )
        self.criterion = FEDNLoss(config)

    def forward_features(self, frames: Optional[Tensor] = None, features: Optional[Tensor] = None) -> Tensor:
        """Per-frame features ``(B, T, D)``: from ``frames`` ``(B, T, 3, H, W)`` (normalised, see
        the encoder's ``preprocess``) through the frame encoder, or ``features`` passed through."""
        if (frames is None) == (features is None):
            raise ValueError("give exactly one of frames and features")
        if features is not None:
            return features
        if self.encoder is None:
            raise ValueError("this model has no frame encoder: pass features")
        B, T = frames.shape[:2]
        return self.encoder(frames.flatten(0, 1)).view(B, T, -1)

    def temporal(self, features: Tensor, mask: Optional[Tensor] = None) -> Dict[str, object]:
        """The temporal network on per-frame features.

        Args:
            features: ``(B, T, D)``, ``D = config.feature_dim``.
            mask: ``(B, T)`` bool, ``True`` on real frames (padding at the end); ``None``: all real.
        Returns:
            ``type_logits``: list over levels of ``(B, T_l, num_types)``; ``emotion_logits``: of
            ``(B, T_l, num_emotions)``; ``offsets``: of ``(B, T_l, 2)``, distances to start and end
            in units of the level's stride (>= 0); ``masks``: of ``(B, T_l)`` bool; ``strides``:
            list of int (``2**l``; step ``i`` of level ``l`` is frame ``i * 2**l``); ``lengths``:
            ``(B,)`` long valid lengths. ``T_l = ceil(T / 2**l)``.
        """
        B, T, D = features.shape
        if D != self.config.feature_dim:
            raise ValueError(f"features have {D} channels, config.feature_dim is {self.config.feature_dim}")
        if mask is None:
            mask = torch.ones(B, T, dtype=torch.bool, device=features.device)
        mask = mask.bool()
        x = features.transpose(1, 2) * mask[:, None].to(features.dtype)  # (B, D, T)
        if self.config.input_norm == "sequence":
            x = standardize_over_time(x, mask)
        x, _ = self.embed(x, mask)  # (B, C, T)
        if self.segment is not None:
            x = self.segment(x.transpose(1, 2), mask).transpose(1, 2)
        feats, masks = self.stage(x, mask)
        feats, masks = self.neck(feats, masks)
        out: Dict[str, object] = dict(self.heads(feats, masks))
        out["masks"] = masks
        out["strides"] = list(self.config.strides)
        # Index of the last real frame + 1 (0 for an empty sequence).
        last = T - mask.flip(1).int().argmax(dim=1)
        out["lengths"] = torch.where(mask.any(dim=1), last, torch.zeros_like(last))
        return out

    def forward(
        self, features: Optional[Tensor] = None, mask: Optional[Tensor] = None, frames: Optional[Tensor] = None
    ) -> Dict[str, object]:
        """:meth:`temporal` on ``features`` ``(B, T, D)`` or on the encoded ``frames`` ``(B, T, 3, H, W)``."""
        return self.temporal(self.forward_features(frames=frames, features=features), mask)

    def loss(self, outputs: Mapping[str, object], gt_list: Sequence[Mapping[str, Tensor]]) -> Dict[str, Tensor]:
        """Losses of :meth:`temporal` outputs against ``gt_list`` (format in the class docstring).

        Returns ``loss`` (to back-propagate), ``type_loss``, ``reg_loss``, ``emotion_loss`` and
        ``num_positives``; see :class:`~.losses.FEDNLoss`.
        """
        return self.criterion(outputs, gt_list)

    @torch.no_grad()
    def predict(self, features: Tensor, mask: Optional[Tensor] = None) -> List[Dict[str, Tensor]]:
        """Detections per batch item (format in the class docstring) for ``features`` ``(B, T, D)``."""
        return postprocess(self.temporal(features, mask), self.config)
