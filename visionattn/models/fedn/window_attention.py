"""Sliding-window attention: frame scoring, local self-attention and the first pyramid levels.

Layout: temporal features are ``(B, C, T)`` (channels first, as 1D convs want) with a boolean
``mask`` ``(B, T)`` that is ``True`` on real frames. Every block zeroes padded steps on output,
so zero padding inside convs and padding from batching look the same to the next layer: a
video gives the same outputs alone or padded inside a batch.

:func:`local_attention` never builds a ``T x T`` matrix: keys and values are unfolded into
``(B, heads, T, w, d)`` windows (``w = 2 * (window_size // 2) + 1``), so time and memory are
``O(T * w)``. :class:`FullAttention` is the ``T x T`` baseline kept only for the scaling
comparison (``attention="full"``).
"""
from __future__ import annotations

from typing import List, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _neg_fill(t: Tensor) -> float:
    # A finite fill instead of -inf: a query whose keys are all padding gets a uniform row
    # instead of NaN; its output is padding and zeroed by the caller anyway.
    return torch.finfo(t.dtype).min


def local_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor, half_window: int) -> Tensor:
    """Scaled dot-product attention where step ``i`` sees only steps ``j`` with ``|i - j| <= half_window``.

    Args:
        q, k, v: ``(B, H, T, d)``.
        mask: ``(B, T)`` bool, ``True`` on valid steps; invalid keys are never attended to.
        half_window: ``h``; each query sees ``2h + 1`` keys (fewer at the ends and at padding).
    Returns:
        ``(B, H, T, d)``; rows of invalid queries are zero.
    """
    w = 2 * half_window + 1
    scale = q.shape[-1] ** -0.5
    # unfold gives views (B, H, T, d, w); einsum copies at most O(T * w * d), never O(T^2).
    k_win = F.pad(k, (0, 0, half_window, half_window)).unfold(2, w, 1)
    v_win = F.pad(v, (0, 0, half_window, half_window)).unfold(2, w, 1)
    key_valid = F.pad(mask, (half_window, half_window), value=False).unfold(1, w, 1)  # (B, T, w)
    scores = torch.einsum("bhtd,bhtdw->bhtw", q * scale, k_win)
    scores = scores.masked_fill(~key_valid[:, None], _neg_fill(scores))
    out = torch.einsum("bhtw,bhtdw->bhtd", scores.softmax(dim=-1), v_win)
    return out * mask[:, None, :, None].to(out.dtype)


def full_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor) -> Tensor:
    """Plain masked attention over all steps, ``(B, H, T, d) -> (B, H, T, d)`` with a ``(B, H, T, T)`` matrix.

    Used inside short segments (segment attention, ``T = segment_length``) and, over whole
    sequences, only by :class:`FullAttention` for the scaling comparison.
    """
    scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)
    scores = scores.masked_fill(~mask[:, None, None, :], _neg_fill(scores))
    out = scores.softmax(dim=-1) @ v
    return out * mask[:, None, :, None].to(out.dtype)


class _MultiheadSelfAttention(nn.Module):
    """Shared projections of the windowed and full variants: ``(B, C, T), (B, T) -> (B, C, T)``."""

    def __init__(self, dim: int, num_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.qkv = nn.Conv1d(dim, 3 * dim, 1)
        self.proj = nn.Conv1d(dim, dim, 1)
        self.drop = nn.Dropout(dropout)

    def _attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        B, C, T = x.shape
        # (B, 3C, T) -> 3 x (B, H, T, d)
        q, k, v = self.qkv(x).view(B, 3, self.num_heads, C // self.num_heads, T).transpose(-2, -1).unbind(1)
        out = self._attend(q, k, v, mask)  # (B, H, T, d)
        out = out.transpose(-2, -1).reshape(B, C, T)
        return self.drop(self.proj(out)) * mask[:, None].to(x.dtype)


class LocalMultiheadAttention(_MultiheadSelfAttention):
    """Multi-head self-attention within a sliding window: ``(B, C, T), (B, T) -> (B, C, T)``.

    Step ``i`` attends to steps ``j`` with ``|i - j| <= window_size // 2``; memory ``O(T * window_size)``.
    """

    def __init__(self, dim: int, num_heads: int, window_size: int, dropout: float = 0.0) -> None:
        super().__init__(dim, num_heads, dropout)
        self.half_window = window_size // 2

    def _attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor) -> Tensor:
        return local_attention(q, k, v, mask, self.half_window)


class FullAttention(_MultiheadSelfAttention):
    """Multi-head self-attention over the whole sequence, ``(B, C, T), (B, T) -> (B, C, T)``.

    Builds ``(B, heads, T, T)`` scores: the quadratic baseline of the scaling comparison only.
    """

    def _attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor) -> Tensor:
        return full_attention(q, k, v, mask)


class ConvMixer(nn.Module):
    """Ablation stand-in for self-attention: depthwise conv (kernel ``window_size``) + pointwise conv.

    ``(B, C, T), (B, T) -> (B, C, T)``; same receptive field as the attention window, no attention.
    """

    def __init__(self, dim: int, window_size: int) -> None:
        super().__init__()
        kernel = 2 * (window_size // 2) + 1
        self.depthwise = nn.Conv1d(dim, dim, kernel, padding=kernel // 2, groups=dim)
        self.pointwise = nn.Conv1d(dim, dim, 1)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        m = mask[:, None].to(x.dtype)
        # Its input is LayerNorm output, non-zero on padding; zero it so the conv sees what it
        # would see at the end of an unpadded sequence.
        return self.pointwise(F.gelu(self.depthwise(x * m))) * m


def make_mixer(kind: str, dim: int, num_heads: int, window_size: int, dropout: float = 0.0) -> nn.Module:
    """The token mixer of a :class:`TransformerBlock`: ``"window"``, ``"full"`` or ``"conv"``."""
    if kind == "window":
        return LocalMultiheadAttention(dim, num_heads, window_size, dropout)
    if kind == "full":
        return FullAttention(dim, num_heads, dropout)
    if kind == "conv":
        return ConvMixer(dim, window_size)
    raise ValueError(f"unknown token mixer {kind!r}; expected 'window', 'full' or 'conv'")


class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channels of ``(B, C, T)``."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


class TransformerBlock(nn.Module):
    """Pre-norm block: ``x + mixer(LN(x))`` then ``x + MLP(LN(x))``; ``(B, C, T), (B, T) -> (B, C, T)``."""

    def __init__(self, dim: int, mixer: nn.Module, mlp_ratio: int = 4, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = ChannelLayerNorm(dim)
        self.mixer = mixer
        self.norm2 = ChannelLayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Conv1d(dim, mlp_ratio * dim, 1), nn.GELU(), nn.Dropout(dropout),
            nn.Conv1d(mlp_ratio * dim, dim, 1), nn.Dropout(dropout),
        )

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        m = mask[:, None].to(x.dtype)
        x = x + self.mixer(self.norm1(x), mask)
        return (x + self.mlp(self.norm2(x))) * m


class ConvBlock(nn.Module):
    """Conv1d (kernel 3, padding 1) + LayerNorm + ReLU: ``(B, C_in, T), (B, T) -> (B, C_out, ceil(T / stride)), mask``.

    With stride 2 the output step ``i`` is centred on input step ``2i``, so the mask is ``mask[:, ::2]``.
    """

    def __init__(self, in_dim: int, out_dim: int, stride: int = 1) -> None:
        super().__init__()
        self.stride = stride
        self.conv = nn.Conv1d(in_dim, out_dim, 3, stride=stride, padding=1)
        self.norm = ChannelLayerNorm(out_dim)

    def forward(self, x: Tensor, mask: Tensor) -> Tuple[Tensor, Tensor]:
        mask = mask[:, :: self.stride]
        x = F.relu(self.norm(self.conv(x)))
        return x * mask[:, None].to(x.dtype), mask


class FrameScoring(nn.Module):
    """1D conv + softmax over each local window; the scores re-weight the frames.

    ``(B, C, T), (B, T) -> (B, C, T)``. A conv scores every step (``s``, ``(B, T)``); frame ``t``'s
    weight is its softmax share among the valid frames of its window ``|j - t| <= window_size // 2``
    times their number, so equal scores give weight 1 and a frame that stands out from its
    neighbours is amplified. The conv starts at zero: the block is the identity at
    initialisation. Cost ``O(T * window_size)``.
    """

    def __init__(self, dim: int, kernel_size: int, window_size: int) -> None:
        super().__init__()
        self.half_window = window_size // 2
        self.conv = nn.Conv1d(dim, 1, kernel_size, padding=kernel_size // 2)
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)

    def weights(self, x: Tensor, mask: Tensor) -> Tensor:
        """Per-frame weights ``(B, T)``, zero on padding."""
        h, w = self.half_window, 2 * self.half_window + 1
        scores = self.conv(x)[:, 0]  # (B, T)
        windows = F.pad(scores, (h, h)).unfold(1, w, 1)  # (B, T, w)
        valid = F.pad(mask, (h, h), value=False).unfold(1, w, 1)
        share = windows.masked_fill(~valid, _neg_fill(windows)).softmax(dim=-1)[..., h]
        return share * valid.sum(dim=-1).to(x.dtype) * mask.to(x.dtype)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        return x * self.weights(x, mask)[:, None]


class SlidingWindowAttention(nn.Module):
    """Frame scoring, sliding-window self-attention, then two stride-2 conv blocks.

    ``(B, C, T), (B, T) -> ([(B, C, T), (B, C, ceil(T/2)), (B, C, ceil(T/4))], [masks (B, T_l)])``:
    the first three pyramid levels (strides 1, 2, 4), which :class:`~.neck.TemporalPyramidNeck`
    extends.

    ``mixer="window"`` (default) uses :class:`LocalMultiheadAttention`, ``"full"`` the ``T x T``
    :class:`FullAttention` (scaling comparison), ``"conv"`` is the ablation without sliding-window
    attention: the frame scoring becomes the identity and the attention a :class:`ConvMixer`.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        window_size: int,
        score_kernel_size: int = 3,
        mixer: str = "window",
        mlp_ratio: int = 4,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.scoring = FrameScoring(dim, score_kernel_size, window_size) if mixer != "conv" else None
        self.block = TransformerBlock(dim, make_mixer(mixer, dim, num_heads, window_size, dropout), mlp_ratio, dropout)
        self.down = nn.ModuleList([ConvBlock(dim, dim, stride=2) for _ in range(2)])

    def forward(self, x: Tensor, mask: Tensor) -> Tuple[List[Tensor], List[Tensor]]:
        if self.scoring is not None:
            x = self.scoring(x, mask)
        x = self.block(x, mask)
        feats, masks = [x], [mask]
        for down in self.down:
            x, mask = down(x, mask)
            feats.append(x)
            masks.append(mask)
        return feats, masks
