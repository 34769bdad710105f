"""Temporal feature pyramid: levels at strides 1, 2, 4, ..., ``2**(num_levels - 1)``.

The sliding-window attention stage gives the first levels (strides 1, 2, 4). Each further
level is a stride-2 downsampling of the previous one (max-pool or conv, kernel 3) followed by a
transformer block whose token mixer is sliding-window attention on that level, so a level-``l``
window of ``w`` steps spans ``w * 2**l`` frames. Every level then gets its own LayerNorm
(as ActionFormer's identity FPN). Level ``l`` has ``ceil(T / 2**l)`` steps; step ``i`` is
centred on frame ``i * 2**l`` and its mask is ``mask[:, ::2**l]``.
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .window_attention import ChannelLayerNorm, TransformerBlock, make_mixer


class Downsample(nn.Module):
    """Stride-2 downsampling, ``(B, C, T), (B, T) -> (B, C, ceil(T/2)), (B, ceil(T/2))``."""

    def __init__(self, dim: int, kind: str = "maxpool") -> None:
        super().__init__()
        if kind not in ("maxpool", "conv"):
            raise ValueError(f"downsample must be 'maxpool' or 'conv', got {kind!r}")
        self.conv = nn.Conv1d(dim, dim, 3, stride=2, padding=1) if kind == "conv" else None

    def forward(self, x: Tensor, mask: Tensor) -> Tuple[Tensor, Tensor]:
        out_mask = mask[:, ::2]
        if self.conv is None:
            # Padding must lose every max, as max_pool1d's own -inf padding does at the sequence end.
            x = F.max_pool1d(x.masked_fill(~mask[:, None], torch.finfo(x.dtype).min), 3, stride=2, padding=1)
        else:
            x = self.conv(x)
        return x * out_mask[:, None].to(x.dtype), out_mask


class TemporalPyramidNeck(nn.Module):
    """Extends the given levels to ``num_levels`` and normalises each level.

    ``forward(feats, masks)``: ``feats`` a list of ``(B, C, T_l)`` for the first ``len(feats)``
    levels, ``masks`` the matching ``(B, T_l)`` bools; returns ``num_levels`` features and masks.

    Args:
        dim: channels C.
        num_levels: total pyramid levels.
        num_input_levels: how many levels the caller provides (3 from the sliding-window stage).
        num_heads, window_size, mixer, mlp_ratio, dropout: the transformer block of each new level
            (``mixer`` ``"window"``, ``"full"`` or ``"conv"``, see :func:`~.window_attention.make_mixer`).
        downsample: ``"maxpool"`` or ``"conv"``.
    """

    def __init__(
        self,
        dim: int,
        num_levels: int,
        num_input_levels: int,
        num_heads: int,
        window_size: int,
        mixer: str = "window",
        downsample: str = "maxpool",
        mlp_ratio: int = 4,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if num_input_levels > num_levels:
            raise ValueError(f"{num_input_levels} input levels exceed num_levels={num_levels}")
        self.num_input_levels = num_input_levels
        extra = num_levels - num_input_levels
        self.down = nn.ModuleList([Downsample(dim, downsample) for _ in range(extra)])
        self.blocks = nn.ModuleList([
            TransformerBlock(dim, make_mixer(mixer, dim, num_heads, window_size, dropout), mlp_ratio, dropout)
            for _ in range(extra)
        ])
        self.norms = nn.ModuleList([ChannelLayerNorm(dim) for _ in range(num_levels)])

    def forward(self, feats: Sequence[Tensor], masks: Sequence[Tensor]) -> Tuple[List[Tensor], List[Tensor]]:
        if len(feats) != self.num_input_levels:
            raise ValueError(f"expected {self.num_input_levels} input levels, got {len(feats)}")
        feats, masks = list(feats), list(masks)
        for down, block in zip(self.down, self.blocks):
            x, mask = down(feats[-1], masks[-1])
            feats.append(block(x, mask))
            masks.append(mask)
        feats = [norm(x) * m[:, None].to(x.dtype) for norm, x, m in zip(self.norms, feats, masks)]
        return feats, masks
