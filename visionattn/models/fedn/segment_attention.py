"""Segment attention and fusion: fine local dynamics inside short segments of the window.

The per-frame features ``(B, T, C)`` are cut into ``ceil(T / S)`` consecutive segments of
``S = segment_length`` frames (the last one padded, with a mask). Inside each segment:

1. multi-head self-attention over its frames, then average pooling over its valid frames gives
   one vector ``g`` per segment;
2. ``g`` is concatenated onto every frame feature of the segment: ``[x_t, g]`` ``(2C)``;
3. FC layers map ``[x_t, g]`` to one logit per frame; a softmax over the segment's valid frames
   (scaled by their number, so uniform logits give weight 1) or a sigmoid turns them into
   per-frame weights ``a_t``;
4. a linear fusion of ``[x_t, g]`` is re-weighted by ``a_t`` and added to ``x_t`` (residual).

Attention is only within segments, so the cost is ``O(T * S)``: linear in T.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .window_attention import full_attention


class SegmentAttention(nn.Module):
    """Segment attention and fusion, ``(B, T, C), (B, T) -> (B, T, C)``.

    Args:
        dim: channels C.
        num_heads: heads of the within-segment attention (must divide C).
        segment_length: frames S per segment; T need not be a multiple (padded internally).
        weighting: ``"softmax"`` (frames of a segment compete) or ``"sigmoid"`` (independent gates).
        dropout: on the residual branch.
    """

    def __init__(
        self, dim: int, num_heads: int, segment_length: int, weighting: str = "softmax", dropout: float = 0.0
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        if weighting not in ("softmax", "sigmoid"):
            raise ValueError(f"weighting must be 'softmax' or 'sigmoid', got {weighting!r}")
        self.num_heads = num_heads
        self.segment_length = segment_length
        self.weighting = weighting
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.fuse = nn.Linear(2 * dim, dim)
        self.score = nn.Sequential(nn.Linear(2 * dim, dim), nn.ReLU(), nn.Linear(dim, 1))
        # Zero last layer: uniform weights at initialisation, which the data then sharpen.
        nn.init.zeros_(self.score[-1].weight)
        nn.init.zeros_(self.score[-1].bias)
        self.drop = nn.Dropout(dropout)

    def frame_weights(self, x: Tensor, mask: Tensor) -> Tensor:
        """Per-frame weights ``(B, T)`` (zero on padding); for inspection and tests."""
        return self._run(x, mask)[1]

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        return self._run(x, mask)[0]

    def _run(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        B, T, C = x.shape
        S = self.segment_length
        n = -(-T // S)
        pad = n * S - T
        m = F.pad(mask, (0, pad), value=False).view(B * n, S)  # (B*n, S)
        h = F.pad(self.norm(x), (0, 0, 0, pad)).view(B * n, S, C)

        q, k, v = self.qkv(h).view(B * n, S, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        att = full_attention(q, k, v, m)  # (B*n, H, S, d), an S x S matrix per segment only
        att = self.proj(att.transpose(1, 2).reshape(B * n, S, C))

        mf = m.to(x.dtype)[..., None]  # (B*n, S, 1)
        count = mf.sum(dim=1, keepdim=True)  # (B*n, 1, 1)
        g = (att * mf).sum(dim=1, keepdim=True) / count.clamp(min=1)  # (B*n, 1, C)
        cat = torch.cat([h, g.expand(-1, S, -1)], dim=-1)  # (B*n, S, 2C)

        logits = self.score(cat)  # (B*n, S, 1)
        if self.weighting == "softmax":
            logits = logits.masked_fill(~m[..., None], torch.finfo(logits.dtype).min)
            weights = logits.softmax(dim=1) * count
        else:
            weights = torch.sigmoid(logits)
        weights = weights * mf

        out = (weights * self.fuse(cat)).view(B, n * S, C)[:, :T]
        weights = weights.view(B, n * S)[:, :T]
        return (x + self.drop(out)) * mask[..., None].to(x.dtype), weights
