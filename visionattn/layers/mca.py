"""Moment Channel Attention (Jiang et al., "MCA: Moment Channel Attention Networks", AAAI 2024).

x (B, C, H, W) -> x * sigmoid(CMC(moments(x))), where ``moments`` pools m statistics of each
channel (:mod:`visionattn.layers.moments`) and the Cross Moment Convolution (CMC) is one
``nn.Conv1d(m, 1, k)`` sliding along the channel axis, so a block has m*k + 1 parameters
whatever C is. ECA-Net is the special case ``variant=("mean",)``.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from . import fused_moments
from .moments import MOMENT_NAMES, VAR_FLOOR, channel_stats, moment_codes, moment_order, use_fused_kernel

VARIANTS = {
    "E": ("mean", "std"),           # "efficient": the paper's mean + variance, authors' std
    "S": ("mean", "skew"),          # "strong"
    "T": ("mean", "std", "skew"),   # the paper's M_triple, best on COCO
}
# The paper's kernel-size ablation; T and custom tuples take the authors' code default.
DEFAULT_KERNEL_SIZE = {"E": 11, "S": 3}
FALLBACK_KERNEL_SIZE = 3


def eca_kernel_size(channels: int, gamma: float = 2.0, beta: float = 1.0) -> int:
    """ECA-Net's adaptive rule: the odd number nearest above |log2(C) / gamma + beta / gamma|."""
    t = int(abs(math.log2(channels) / gamma + beta / gamma))
    return max(t if t % 2 else t + 1, 1)


def resolve_moments(variant: Union[str, Sequence[str]]) -> Tuple[str, ...]:
    if isinstance(variant, str):
        key = variant.upper()
        if key not in VARIANTS:
            raise ValueError(
                f"unknown MCA variant {variant!r}; use one of {sorted(VARIANTS)} "
                f"or a tuple of moment names from {list(MOMENT_NAMES)}"
            )
        return VARIANTS[key]
    moments = tuple(variant)
    if not moments or len(set(moments)) != len(moments):
        raise ValueError(f"MCA moments must be a non-empty tuple without repeats, got {variant!r}")
    moment_order(moments)  # validates names
    return moments


def resolve_kernel_size(
    kernel_size: Union[int, str, None], variant: Union[str, Sequence[str]], channels: Optional[int]
) -> int:
    if kernel_size is None:
        key = variant.upper() if isinstance(variant, str) else None
        return DEFAULT_KERNEL_SIZE.get(key, FALLBACK_KERNEL_SIZE)
    if kernel_size == "auto":
        if channels is None:
            raise ValueError("kernel_size='auto' needs the channel count (channels=)")
        return eca_kernel_size(channels)
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be an odd positive int, None or 'auto', got {kernel_size!r}")
    return kernel_size


class MomentChannelAttention(nn.Module):
    """Moment Channel Attention block.

    Args:
        channels: number of input channels C. Only needed for ``kernel_size='auto'``; the
            block's parameters do not depend on C.
        variant: ``"E"`` (mean + std), ``"S"`` (mean + skewness), ``"T"`` (mean + std +
            skewness), or a tuple of names from ``MOMENT_NAMES`` (e.g. ``("mean", "kurt")``).
        kernel_size: odd CMC kernel size; ``None`` for the paper's default (E: 11, S: 3,
            others: 3), or ``"auto"`` for ECA's rule from C.
        eps: added to the skewness/kurtosis denominators (authors' code: 1e-5).
        gate_layer: the gate nonlinearity module class (default ``nn.Sigmoid``).
        inplace: when nothing needs autograd (inference), write the result over ``x``
            instead of a new tensor, as ``nn.ReLU(inplace=True)`` does. Only for places where
            nothing else reads ``x`` afterwards (a residual block's attention slot); it saves
            allocating a feature-map-sized output, most of the block's inference cost on CPU.
        device, dtype: factory kwargs for the CMC parameters (timm >= 1.0.21 passes them).

    Shape:
        x: (B, C, H, W) -> (B, C, H, W), same dtype. Moments and gate are computed in float32.
    """

    def __init__(
        self,
        channels: Optional[int] = None,
        variant: Union[str, Sequence[str]] = "S",
        kernel_size: Union[int, str, None] = None,
        eps: float = 1e-5,
        gate_layer: type = nn.Sigmoid,
        inplace: bool = False,
        device=None,
        dtype=None,
    ):
        super().__init__()
        self.channels = channels
        self.moments = list(resolve_moments(variant))
        self.order = moment_order(self.moments)
        self.kernel_size = resolve_kernel_size(kernel_size, variant, channels)
        self.eps = eps
        self.inplace = inplace
        self.cmc = nn.Conv1d(
            len(self.moments), 1, self.kernel_size, padding=(self.kernel_size - 1) // 2,
            bias=True, device=device, dtype=dtype,
        )
        self.gate = gate_layer()

    def _needs_grad(self, x: Tensor) -> bool:
        return torch.is_grad_enabled() and (x.requires_grad or self.cmc.weight.requires_grad)

    def _fused_inference(self, x: Tensor) -> bool:
        """Whether the one-call CPU kernel can stand in for forward: nothing needs autograd,
        the gate is the sigmoid it implements, and the CMC weights are float32/float64."""
        return (
            not self._needs_grad(x)
            and type(self.gate) is nn.Sigmoid
            and self.cmc.bias is not None
            and self.cmc.weight.dtype in (torch.float32, torch.float64)
            and use_fused_kernel(x)
        )

    @torch.jit.unused
    def _fused_forward(self, x: Tensor) -> Tensor:
        return fused_moments.load().attend(
            x, self.cmc.weight.detach()[0], float(self.cmc.bias.detach()[0]), moment_codes(self.moments),
            self.order, self.eps, VAR_FLOOR, self.inplace,
        )

    def forward(self, x: Tensor) -> Tensor:
        if not torch.jit.is_scripting():
            if self._fused_inference(x):
                return self._fused_forward(x)
        stats = channel_stats(x, self.moments, self.order, self.eps)  # (B, m, C)
        # Cast to the CMC weight dtype; under autocast the conv itself may run in half.
        attn = self.gate(self.cmc(stats.to(self.cmc.weight.dtype)))  # (B, 1, C)
        gate = attn.view(x.shape[0], x.shape[1], 1, 1).to(x.dtype)
        if self.inplace and not self._needs_grad(x):
            return x.mul_(gate)
        return x * gate

    def extra_repr(self) -> str:
        return (f"channels={self.channels}, moments={tuple(self.moments)}, kernel_size={self.kernel_size}"
                + (", inplace=True" if self.inplace else ""))
