"""Framework-free building blocks (plain torch.nn)."""
from .mca import VARIANTS, MomentChannelAttention, eca_kernel_size
from .moments import MOMENT_NAMES, central_moments, channel_moments

__all__ = [
    "MOMENT_NAMES", "VARIANTS", "MomentChannelAttention", "central_moments", "channel_moments",
    "eca_kernel_size",
]
