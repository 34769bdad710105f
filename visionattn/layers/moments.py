"""Per-channel moment statistics of feature maps, the pooling step of Moment Channel Attention.

All statistics use the population normalisation (divide by N = H*W) and are accumulated and
returned in float32 for any input dtype but float64 (kept as is), because under fp16/bf16 autocast x**3 and sigma**3
under- or overflow.

=========  ===========================================  ==============================
name       definition (per sample, per channel)        note
=========  ===========================================  ==============================
``mean``   mu = E[x]
``var``    M2 = E[(x - mu)^2]
``std``    sqrt(M2)                                     paper's MCA-E spread
``skew``   M3 / (std^3 + eps), M3 = E[(x - mu)^3]       authors' standardized form
``kurt``   M4 / (M2^2 + eps), M4 = E[(x - mu)^4]        non-excess; beyond the paper
=========  ===========================================  ==============================

A constant channel (std = 0, e.g. a zero-initialised last BatchNorm) gives finite values
and finite gradients: the square root is taken of ``max(M2, 1e-12)``.
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

import torch
from torch import Tensor

from . import fused_moments

MOMENT_NAMES: Tuple[str, ...] = ("mean", "std", "var", "skew", "kurt")
# Floor under M2 before the square root: keeps d sqrt(M2) finite for constant channels (1e-6 in std units).
VAR_FLOOR = 1e-12
_ORDER = {"mean": 1, "std": 2, "var": 2, "skew": 3, "kurt": 4}


def moment_order(moments: Sequence[str]) -> int:
    """Highest central-moment order needed for ``moments`` (1..4)."""
    unknown = [m for m in moments if m not in _ORDER]
    if unknown:
        raise ValueError(f"unknown moment(s) {unknown}; choose from {list(MOMENT_NAMES)}")
    return max(_ORDER[m] for m in moments)


def _reference_central_moments(x: Tensor, order: int) -> Tensor:
    """Plain torch ops: (B, C, H, W) -> (B, C, 4) mean, M2, M3, M4 (zeros past order)."""
    rows = x.flatten(2)
    if rows.dtype != torch.float64:
        rows = rows.float()
    mean = rows.mean(-1)
    zeros = torch.zeros_like(mean)
    m2, m3, m4 = zeros, zeros, zeros
    if order >= 2:
        d = rows - mean.unsqueeze(-1)
        d2 = d * d
        m2 = d2.mean(-1)
        if order >= 3:
            m3 = (d2 * d).mean(-1)
        if order >= 4:
            m4 = (d2 * d2).mean(-1)
    return torch.stack((mean, m2, m3, m4), dim=-1)


@torch.jit.unused
def _fused_central_moments(x: Tensor, order: int) -> Tensor:
    b, c, h, w = x.shape
    out = fused_moments.CentralMomentsFunction.apply(x.reshape(b * c, h * w), order)
    return out.view(b, c, 4)


def use_fused_kernel(x: Tensor) -> bool:
    """Whether the CPU kernel handles this (B, C, H, W) map. Not while torch.compile or
    torch.export trace the model: they cannot see into the kernel, and the plain torch ops
    compile well."""
    return (
        not torch.compiler.is_compiling()
        and x.dim() == 4
        and x.device.type == "cpu"
        and x.is_contiguous()
        and x.numel() > 0
        and fused_moments.load() is not None
    )


def central_moments(x: Tensor, order: int = 3) -> Tensor:
    """Mean and central moments of each (sample, channel) plane.

    Args:
        x: (B, C, H, W) feature map, any floating dtype.
        order: highest central moment needed (1..4); higher slots are returned as zeros.

    Returns:
        (B, C, 4) tensor: mean, M2, M3, M4; float32, or float64 for float64 input.

    On CPU this runs the fused kernel (one sweep of memory, see
    :mod:`visionattn.layers.fused_moments`); elsewhere, under TorchScript, or where the
    kernel cannot be built, it uses plain torch ops that compute the same values.
    """
    if not torch.jit.is_scripting():
        if use_fused_kernel(x):
            return _fused_central_moments(x, order)
    return _reference_central_moments(x, order)


def moments_from_central(stats: Tensor, moments: List[str], eps: float = 1e-5, var_floor: float = VAR_FLOOR) -> Tensor:
    """Turn (B, C, 4) central moments into the named statistics, stacked as (B, m, C)."""
    mean, m2, m3, m4 = stats.unbind(-1)
    std = m2.clamp_min(var_floor).sqrt()
    out: List[Tensor] = []
    for name in moments:
        if name == "mean":
            out.append(mean)
        elif name == "std":
            out.append(std)
        elif name == "var":
            out.append(m2)
        elif name == "skew":
            out.append(m3 / (std * std * std + eps))
        elif name == "kurt":
            out.append(m4 / (m2 * m2 + eps))
        else:
            raise ValueError("unknown moment " + name)
    return torch.stack(out, dim=1)


def moment_codes(moments: Sequence[str]) -> List[int]:
    """The kernel's names for ``moments``: their indices in ``MOMENT_NAMES``."""
    return [MOMENT_NAMES.index(name) for name in moments]


@torch.jit.unused
def _fused_channel_stats(x: Tensor, moments: List[str], order: int, eps: float) -> Tensor:
    return fused_moments.load().stats(x, moment_codes(moments), order, eps, VAR_FLOOR)


def channel_stats(x: Tensor, moments: List[str], order: int, eps: float = 1e-5) -> Tensor:
    """:func:`channel_moments` with the names already validated and their ``order`` known.

    Without autograd (inference) on CPU, one kernel call produces the (B, m, C) result;
    otherwise the central moments go through autograd and are combined with torch ops.
    """
    if not torch.jit.is_scripting():
        if not (torch.is_grad_enabled() and x.requires_grad) and use_fused_kernel(x):
            return _fused_channel_stats(x, moments, order, eps)
    return moments_from_central(central_moments(x, order), moments, eps)


def channel_moments(x: Tensor, moments: Sequence[str] = ("mean", "std", "skew"), eps: float = 1e-5) -> Tensor:
    """Named per-channel statistics of a feature map.

    Args:
        x: (B, C, H, W) feature map.
        moments: any subset of ``MOMENT_NAMES``, in the order wanted.
        eps: added to the denominators of ``skew`` and ``kurt``.

    Returns:
        (B, m, C) float32 (float64 for float64 input) tensor, m = len(moments): the layout the Cross Moment
        Convolution consumes (moments as input channels, channels as the sequence axis).
    """
    names = list(moments)
    return channel_stats(x, names, moment_order(names), eps)
