"""Fused CPU kernel for per-channel central moments, built on first use.

The kernel (``visionattn/csrc/channel_moments.cpp``) streams each (b, c) plane once and
returns its mean and central moments M2..M4, with a matching one-pass backward. It is
compiled with ``torch.utils.cpp_extension`` the first time it is needed (about a minute on
two cores) and cached under ``$TORCH_EXTENSIONS_DIR`` (default ``~/.cache/torch_extensions``),
so later processes load it in well under a second.

The build name carries a hash of the source and of this CPU's feature flags because the
kernel is compiled with ``-march=native``: a home directory shared by different machines
then holds one build per CPU type instead of one that crashes on the other.

Set ``VISIONATTN_FUSED_MOMENTS=0`` to disable it; without a compiler the build fails once,
a warning says so, and :func:`visionattn.layers.moments.central_moments` uses plain torch ops.
"""
from __future__ import annotations

import hashlib
import os
import platform
import threading
import warnings
from pathlib import Path
from typing import Optional

import torch

_SOURCE = Path(__file__).resolve().parent.parent / "csrc" / "channel_moments.cpp"
_lock = threading.Lock()
_module = None
_failed = False


def _cpu_fingerprint() -> str:
    flags = platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                flags += line
                break
    except OSError:
        pass
    return flags


def _build_name() -> str:
    digest = hashlib.sha1(_SOURCE.read_bytes() + _cpu_fingerprint().encode() + torch.__version__.encode())
    return f"visionattn_moments_{digest.hexdigest()[:12]}"


def enabled() -> bool:
    return os.environ.get("VISIONATTN_FUSED_MOMENTS", "1") != "0"


def load() -> Optional[object]:
    """The compiled extension, building it if needed; None where it cannot be built."""
    global _module, _failed
    if _module is not None or _failed or not enabled():
        return _module
    with _lock:
        if _module is None and not _failed:
            try:
                from torch.utils.cpp_extension import load as cpp_load

                flags = ["-O3", "-fopenmp"]
                if platform.machine() in ("x86_64", "AMD64"):
                    flags.append("-march=native")
                _module = cpp_load(
                    name=_build_name(),
                    sources=[str(_SOURCE)],
                    extra_cflags=flags,
                    extra_ldflags=["-fopenmp"],
                    verbose=False,
                )
            except Exception as exc:  # no compiler, no ninja, read-only cache...
                _failed = True
                warnings.warn(
                    f"visionattn: fused moment kernel unavailable ({type(exc).__name__}: "
                    f"{str(exc).splitlines()[0] if str(exc) else ''}); using plain torch ops, "
                    "which give the same values more slowly.",
                    RuntimeWarning,
                    stacklevel=2,
                )
    return _module


class CentralMomentsFunction(torch.autograd.Function):
    """(R, N) rows -> (R, 4): mean, M2, M3, M4 in float32 (float64 for float64 input)."""

    @staticmethod
    def forward(ctx, rows: torch.Tensor, order: int) -> torch.Tensor:
        ext = load()
        out = ext.forward(rows, order)
        ctx.save_for_backward(rows, out)
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        rows, out = ctx.saved_tensors
        n = rows.shape[1]
        g = grad_out.to(out.dtype)
        # d mean/dx = 1/n; d M_k/dx_j = k/n (d_j^(k-1) - M_(k-1)) with M_1 = 0, so the row
        # gradient is the cubic c0 + c1 d + c2 d^2 + c3 d^3 in the centred value d.
        c0 = (g[:, 0] - 3 * g[:, 2] * out[:, 1] - 4 * g[:, 3] * out[:, 2]) / n
        coef = torch.stack((c0, 2 * g[:, 1] / n, 3 * g[:, 2] / n, 4 * g[:, 3] / n), dim=1)
        return load().backward(rows, out[:, 0], coef), None
