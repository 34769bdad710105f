"""Decoupled heads shared across pyramid levels.

At every step of every level: expression-type logits (one sigmoid logit per type: micro,
macro; "no expression" is all-low), emotion logits (softmax over ``num_emotions``), and the
distances to the start and the end, ``ReLU(scale_l * conv(x))`` in units of the level's stride
(``scale_l`` a learnt per-level scalar, as ActionFormer). An optional shared attention layer
(a transformer block with sliding-window attention) precedes the three conv branches, as the
paper's heads combine multi-head attention with 1D convs.
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .window_attention import ChannelLayerNorm, TransformerBlock, make_mixer


class _ConvBranch(nn.Module):
    """``num_convs`` x (conv + LayerNorm + ReLU) then a conv to ``out_dim``: ``(B, C, T) -> (B, out_dim, T)``."""

    def __init__(self, dim: int, out_dim: int, num_convs: int, kernel_size: int) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.convs = nn.ModuleList([nn.Conv1d(dim, dim, kernel_size, padding=pad) for _ in range(num_convs)])
        self.norms = nn.ModuleList([ChannelLayerNorm(dim) for _ in range(num_convs)])
        self.out = nn.Conv1d(dim, out_dim, kernel_size, padding=pad)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        m = mask[:, None].to(x.dtype)
        for conv, norm in zip(self.convs, self.norms):
            x = F.relu(norm(conv(x))) * m
        return self.out(x) * m


class FEDNHeads(nn.Module):
    """Type, emotion and boundary heads, shared by all levels.

    ``forward(feats, masks)`` with ``feats`` a list of ``(B, C, T_l)`` and ``masks`` of ``(B, T_l)``
    returns lists over levels of ``type_logits`` ``(B, T_l, num_types)``, ``emotion_logits``
    ``(B, T_l, num_emotions)`` and ``offsets`` ``(B, T_l, 2)`` (start, end distances >= 0 in strides).

    Args:
        dim: channels C.
        num_levels: levels, one learnt regression scale each.
        num_types, num_emotions: output sizes.
        num_convs, kernel_size: conv layers of each branch before its output conv.
        attention: ``None`` for conv-only heads, else the token mixer (``"window"``, ``"full"``,
            ``"conv"``) of the shared block before the branches.
        num_heads, window_size, mlp_ratio, dropout: that block's settings.
        prior_prob: initial type probability (focal-loss bias prior).
    """

    def __init__(
        self,
        dim: int,
        num_levels: int,
        num_types: int,
        num_emotions: int,
        num_convs: int = 2,
        kernel_size: int = 3,
        attention: Optional[str] = "window",
        num_heads: int = 4,
        window_size: int = 19,
        mlp_ratio: int = 4,
        dropout: float = 0.0,
        prior_prob: float = 0.01,
    ) -> None:
        super().__init__()
        self.attention = (
            TransformerBlock(dim, make_mixer(attention, dim, num_heads, window_size, dropout), mlp_ratio, dropout)
            if attention is not None else None
        )
        self.type_head = _ConvBranch(dim, num_types, num_convs, kernel_size)
        self.emotion_head = _ConvBranch(dim, num_emotions, num_convs, kernel_size)
        self.reg_head = _ConvBranch(dim, 2, num_convs, kernel_size)
        self.scales = nn.Parameter(torch.ones(num_levels))
        # Rare positives: start every point at prior_prob so the focal loss is not swamped early.
        nn.init.constant_(self.type_head.out.bias, -math.log((1 - prior_prob) / prior_prob))

    def forward(self, feats: Sequence[Tensor], masks: Sequence[Tensor]) -> Dict[str, List[Tensor]]:
        out: Dict[str, List[Tensor]] = {"type_logits": [], "emotion_logits": [], "offsets": []}
        for level, (x, mask) in enumerate(zip(feats, masks)):
            if self.attention is not None:
                x = self.attention(x, mask)
            out["type_logits"].append(self.type_head(x, mask).transpose(1, 2))
            out["emotion_logits"].append(self.emotion_head(x, mask).transpose(1, 2))
            offsets = F.relu(self.scales[level] * self.reg_head(x, mask))
            out["offsets"].append(offsets.transpose(1, 2))
        return out
