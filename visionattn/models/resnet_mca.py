"""MCA ResNets registered in timm's model registry.

Importing this module (``import visionattn`` does) registers, for timm's own ``ResNet``
with ``block_args=dict(attn_layer=...)`` putting MCA in every residual block (the SE/ECA
slot after the last BatchNorm, before the residual add):

- ``resnet{18,34,50,101,152}_mca_{e,s}``
- ``resnet{50,101}d_mca_{e,s}``: ResNet-D (deep 3x3 stem, average-pool downsampling)

No weights are published, so every model has a single ``untrained`` pretrained tag; load
your own with ``timm.create_model(name, checkpoint_path=PATH)``. ``PARAM_COUNTS`` documents
the size of each at 1000 classes (a test checks it).
"""
from __future__ import annotations

from functools import partial
from typing import Any, Dict

from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models.resnet import BasicBlock, Bottleneck, ResNet

from ..layers.mca import MomentChannelAttention

__all__ = ["PARAM_COUNTS"]

_DEPTHS = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
}
_RESNET_D = dict(stem_width=32, stem_type="deep", avg_down=True)

# Trainable parameters at num_classes=1000 (MCA adds m*k + 1 per block to the plain ResNet).
PARAM_COUNTS = {
    "resnet18_mca_e": 11_689_696,
    "resnet18_mca_s": 11_689_568,
    "resnet34_mca_e": 21_798_040,
    "resnet34_mca_s": 21_797_784,
    "resnet50_mca_e": 25_557_400,
    "resnet50_mca_s": 25_557_144,
    "resnet101_mca_e": 44_549_919,
    "resnet101_mca_s": 44_549_391,
    "resnet152_mca_e": 60_193_958,
    "resnet152_mca_s": 60_193_158,
    "resnet50d_mca_e": 25_576_632,
    "resnet50d_mca_s": 25_576_376,
    "resnet101d_mca_e": 44_569_151,
    "resnet101d_mca_s": 44_568_623,
}


def _cfg(**kwargs: Any) -> Dict[str, Any]:
    return {
        "url": "",
        "num_classes": 1000, "input_size": (3, 224, 224), "pool_size": (7, 7),
        "crop_pct": 0.875, "interpolation": "bilinear",
        "mean": IMAGENET_DEFAULT_MEAN, "std": IMAGENET_DEFAULT_STD,
        "first_conv": "conv1", "classifier": "fc",
        "license": "apache-2.0",
        "paper_ids": "arXiv:2403.01713", "paper_name": "MCA: Moment Channel Attention Networks",
        **kwargs,
    }


default_cfgs = generate_default_cfgs({
    "resnet18_mca_e.untrained": _cfg(),
    "resnet18_mca_s.untrained": _cfg(),
    "resnet34_mca_e.untrained": _cfg(),
    "resnet34_mca_s.untrained": _cfg(),
    "resnet50_mca_e.untrained": _cfg(),
    "resnet50_mca_s.untrained": _cfg(),
    "resnet101_mca_e.untrained": _cfg(),
    "resnet101_mca_s.untrained": _cfg(),
    "resnet152_mca_e.untrained": _cfg(),
    "resnet152_mca_s.untrained": _cfg(),
    "resnet50d_mca_e.untrained": _cfg(first_conv="conv1.0"),
    "resnet50d_mca_s.untrained": _cfg(first_conv="conv1.0"),
    "resnet101d_mca_e.untrained": _cfg(first_conv="conv1.0"),
    "resnet101d_mca_s.untrained": _cfg(first_conv="conv1.0"),
})


def _create(name: str, depth: int, variant: str, pretrained: bool = False, resnet_d: bool = False,
            **kwargs: Any) -> ResNet:
    """timm's ResNet at ``depth`` with MCA-``variant`` as every block's attention layer."""
    block, layers = _DEPTHS[depth]
    model_args: Dict[str, Any] = dict(block=block, layers=layers, **(_RESNET_D if resnet_d else {}))
    block_args = dict(kwargs.pop("block_args", None) or {})
    # In place: timm's blocks hand `se` the last BatchNorm's output and read it nowhere else.
    block_args.setdefault("attn_layer", partial(MomentChannelAttention, variant=variant, inplace=True))
    return build_model_with_cfg(ResNet, name, pretrained, block_args=block_args, **dict(model_args, **kwargs))


@register_model
def resnet18_mca_e(pretrained: bool = False, **kwargs: Any) -> ResNet:
    """ResNet-18 with MCA-E in every block."""
    return _create("resnet18_mca_e", 18, "E", pretrained, **kwargs)


@register_model
def resnet18_mca_s(pretrained: bool = False, **kwargs: Any) -> ResNet:
    """ResNet-18 with MCA-S in every block."""
    return _create("resnet18_mca_s", 18, "S", pretrained, **kwargs)


@register_model
def resnet34_mca_e(pretrained: bool = False, **kwargs: Any) -> ResNet:
    """ResNet-34 with MCA-E in every block."""
    return _create("resnet34_mca_e", 34, "E", pretrained, **kwargs)


@register_model
def resnet34_mca_s(pretrained: bool = False, **kwargs: Any) -> ResNet:
    """ResNet-34 with MCA-S in every block."""
    return _create("resnet34_mca_s", 34, "S", pretrained, **kwargs)


@register_model
def resnet50_mca_e(pretrained: bool = False, **kwargs: Any) -> ResNet:
    """ResNet-50 with MCA-E in every block."""
    return _create("resnet50_mca_e", 50, "E", pretrained, **kwargs)


@register_model
def resnet50_mca_s(pretrained: bool = False, **kwargs: Any) -> ResNet:
    """ResNet-50 with MCA-S in every block."""
    return _create("resnet50_mca_s", 50, "S", pretrained, **kwargs)


@register_model
def resnet101_mca_e(pretrained: bool = False, **kwargs: Any) -> ResNet:
    """ResNet-101 with MCA-E in every block."""
    return _create("resnet101_mca_e", 101, "E", pretrained, **kwargs)


@register_model
def resnet101_mca_s(pretrained: bool = False, **kwargs: Any) -> ResNet:
    """ResNet-101 with MCA-S in every block."""
    return _create("resnet101_mca_s", 101, "S", pretrained, **kwargs)


@register_model
def resnet152_mca_e(pretrained: bool = False, **kwargs: Any) -> ResNet:
    """ResNet-152 with MCA-E in every block."""
    return _create("resnet152_mca_e", 152, "E", pretrained, **kwargs)


@register_model
def resnet152_mca_s(pretrained: bool = False, **kwargs: Any) -> ResNet:
    """ResNet-152 with MCA-S in every block."""
    return _create("resnet152_mca_s", 152, "S", pretrained, **kwargs)


@register_model
def resnet50d_mca_e(pretrained: bool = False, **kwargs: Any) -> ResNet:
    """ResNet-50-D with MCA-E in every block."""
    return _create("resnet50d_mca_e", 50, "E", pretrained, resnet_d=True, **kwargs)


@register_model
def resnet50d_mca_s(pretrained: bool = False, **kwargs: Any) -> ResNet:
    """ResNet-50-D with MCA-S in every block."""
    return _create("resnet50d_mca_s", 50, "S", pretrained, resnet_d=True, **kwargs)


@register_model
def resnet101d_mca_e(pretrained: bool = False, **kwargs: Any) -> ResNet:
    """ResNet-101-D with MCA-E in every block."""
    return _create("resnet101d_mca_e", 101, "E", pretrained, resnet_d=True, **kwargs)


@register_model
def resnet101d_mca_s(pretrained: bool = False, **kwargs: Any) -> ResNet:
    """ResNet-101-D with MCA-S in every block."""
    return _create("resnet101d_mca_s", 101, "S", pretrained, resnet_d=True, **kwargs)
