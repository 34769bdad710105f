"""ShuffleNetV2 (Ma et al., ECCV 2018) as a timm model, with optional channel attention.

The paper's fourth MCA backbone: ShuffleNetV2 x1.0 with MCA applied to each unit's
concatenated output, before the channel shuffle. timm has no ShuffleNetV2, so this is a
timm-style implementation that honours the same contract as timm's own models:
``features_only``, ``forward_intermediates``, ``set_grad_checkpointing``, TorchScript,
``reset_classifier`` and ``checkpoint_path``.

Registered: ``shufflenetv2_x1_0`` (no attention, the baseline), ``shufflenetv2_x1_0_mca_e``,
``shufflenetv2_x1_0_mca_s``.
"""
from __future__ import annotations

from functools import partial
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import create_classifier
from timm.models import build_model_with_cfg, checkpoint_seq, generate_default_cfgs, register_model
from timm.models._features import feature_take_indices
from torch import nn

from ..layers.mca import MomentChannelAttention

__all__ = ["ShuffleNetV2"]


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, H, W), channels interleaved across ``groups``."""
    b, c, h, w = x.shape
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


def _conv_bn(in_chs: int, out_chs: int, kernel_size: int, stride: int = 1, groups: int = 1, act: bool = True,
             device=None, dtype=None) -> nn.Sequential:
    layers = [
        nn.Conv2d(in_chs, out_chs, kernel_size, stride, kernel_size // 2, groups=groups, bias=False,
                  device=device, dtype=dtype),
        nn.BatchNorm2d(out_chs, device=device, dtype=dtype),
    ]
    if act:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """ShuffleNetV2 unit. Stride 1: split channels, transform one half. Stride 2: transform
    both copies with downsampling. Then concatenate, attend (optional), shuffle."""

    def __init__(self, in_chs: int, out_chs: int, stride: int, attn_layer: Optional[Callable] = None,
                 device=None, dtype=None):
        super().__init__()
        dd = dict(device=device, dtype=dtype)
        self.stride = stride
        branch_chs = out_chs // 2
        if stride > 1:
            self.branch1 = nn.Sequential(
                _conv_bn(in_chs, in_chs, 3, stride, groups=in_chs, act=False, **dd),
                _conv_bn(in_chs, branch_chs, 1, **dd),
            )
        else:
            self.branch1 = nn.Identity()
        b2_in = in_chs if stride > 1 else branch_chs
        self.branch2 = nn.Sequential(
            _conv_bn(b2_in, branch_chs, 1, **dd),
            _conv_bn(branch_chs, branch_chs, 3, stride, groups=branch_chs, act=False, **dd),
            _conv_bn(branch_chs, branch_chs, 1, **dd),
        )
        self.attn = attn_layer(out_chs, **dd) if attn_layer is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.branch2(x2)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return channel_shuffle(self.attn(out), 2)  # `out` is fresh, so attn may work in place


class ShuffleNetV2(nn.Module):
    """ShuffleNetV2 classifier.

    Args:
        stage_repeats: units per stage (x1.0: 4, 8, 4).
        stage_out_chs: stem, three stages, final 1x1 conv (x1.0: 24, 116, 232, 464, 1024).
        attn_layer: class built as ``attn_layer(channels, device=, dtype=)`` in every unit.
        num_classes, in_chans, global_pool, drop_rate: as in timm.
        zero_init_last: zero the last BatchNorm of each unit's transform branch, as timm's
            ResNet does for its residual branches.
    """

    def __init__(
        self,
        stage_repeats: Tuple[int, ...] = (4, 8, 4),
        stage_out_chs: Tuple[int, ...] = (24, 116, 232, 464, 1024),
        attn_layer: Optional[Callable] = None,
        num_classes: int = 1000,
        in_chans: int = 3,
        global_pool: str = "avg",
        drop_rate: float = 0.0,
        zero_init_last: bool = False,
        device=None,
        dtype=None,
    ):
        super().__init__()
        dd = dict(device=device, dtype=dtype)
        self.num_classes = num_classes
        self.drop_rate = drop_rate
        self.grad_checkpointing = False
        stem_chs = stage_out_chs[0]
        self.conv1 = _conv_bn(in_chans, stem_chs, 3, 2, **dd)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.feature_info: List[Dict[str, Any]] = [dict(num_chs=stem_chs, reduction=2, module="conv1")]
        in_chs, reduction = stem_chs, 4
        for i, (repeats, out_chs) in enumerate(zip(stage_repeats, stage_out_chs[1:-1])):
            reduction *= 2
            units = [InvertedResidual(in_chs if j == 0 else out_chs, out_chs, 2 if j == 0 else 1, attn_layer, **dd)
                     for j in range(repeats)]
            setattr(self, f"stage{i + 2}", nn.Sequential(*units))
            self.feature_info.append(dict(num_chs=out_chs, reduction=reduction, module=f"stage{i + 2}"))
            in_chs = out_chs
        self.num_features = self.head_hidden_size = stage_out_chs[-1]
        self.conv5 = _conv_bn(in_chs, self.num_features, 1, **dd)
        self.feature_info.append(dict(num_chs=self.num_features, reduction=reduction, module="conv5"))
        self.global_pool, self.fc = create_classifier(self.num_features, num_classes, pool_type=global_pool, **dd)
        self._init_weights(zero_init_last)

    def _init_weights(self, zero_init_last: bool) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)
        if zero_init_last:
            for m in self.modules():
                if isinstance(m, InvertedResidual):
                    nn.init.zeros_(m.branch2[-1][1].weight)

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> Dict[str, Any]:
        return dict(stem=r"^conv1", blocks=r"^stage(\d+)" if coarse else r"^stage(\d+)\.(\d+)")

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int, global_pool: str = "avg") -> None:
        self.num_classes = num_classes
        self.global_pool, self.fc = create_classifier(self.num_features, num_classes, pool_type=global_pool)

    def _stages(self) -> List[nn.Module]:
        return [self.stage2, self.stage3, self.stage4]

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: Optional[Union[int, List[int]]] = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> Union[List[torch.Tensor], Tuple[torch.Tensor, List[torch.Tensor]]]:
        """Features at the stem, each stage and the final conv (indices 0..4), as timm's ResNet."""
        assert output_fmt == "NCHW", "Output shape must be NCHW."
        intermediates = []
        take_indices, max_index = feature_take_indices(len(self.feature_info), indices)
        x = self.conv1(x)
        if 0 in take_indices:
            intermediates.append(x)
        x = self.maxpool(x)
        stages = self._stages()
        if stop_early:
            stages = stages[:max_index]
        for feat_idx, stage in enumerate(stages, start=1):
            if self.grad_checkpointing and not torch.jit.is_scripting():
                x = checkpoint_seq(stage, x)
            else:
                x = stage(x)
            if feat_idx in take_indices:
                intermediates.append(x)
        if not stop_early or max_index == 4:
            x = self.conv5(x)
            if 4 in take_indices:
                intermediates.append(x)
        if intermediates_only:
            return intermediates
        return x, intermediates

    def prune_intermediate_layers(self, indices: Union[int, List[int]] = 1, prune_norm: bool = False,
                                  prune_head: bool = True) -> List[int]:
        take_indices, max_index = feature_take_indices(len(self.feature_info), indices)
        for feat_idx in range(max_index + 1, 4):  # feature i comes out of stage i + 1
            setattr(self, f"stage{feat_idx + 1}", nn.Sequential())
        if max_index < 4:
            self.conv5 = nn.Identity()
            self.num_features = self.head_hidden_size = self.feature_info[max_index]["num_chs"]
        if prune_head or max_index < 4:
            self.reset_classifier(0, "")
        return take_indices

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.conv1(x))
        if self.grad_checkpointing and not torch.jit.is_scripting():
            x = checkpoint_seq(nn.Sequential(self.stage2, self.stage3, self.stage4), x, flatten=True)
        else:
            x = self.stage4(self.stage3(self.stage2(x)))
        return self.conv5(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.global_pool(x)
        if self.drop_rate > 0.0:
            x = nn.functional.dropout(x, p=self.drop_rate, training=self.training)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _cfg(**kwargs: Any) -> Dict[str, Any]:
    return {
        "url": "", "num_classes": 1000, "input_size": (3, 224, 224), "pool_size": (7, 7),
        "crop_pct": 0.875, "interpolation": "bilinear",
        "mean": IMAGENET_DEFAULT_MEAN, "std": IMAGENET_DEFAULT_STD,
        "first_conv": "conv1.0", "classifier": "fc", "license": "apache-2.0",
        **kwargs,
    }


default_cfgs = generate_default_cfgs({
    "shufflenetv2_x1_0.untrained": _cfg(paper_ids="arXiv:1807.11164"),
    "shufflenetv2_x1_0_mca_e.untrained": _cfg(paper_ids="arXiv:2403.01713"),
    "shufflenetv2_x1_0_mca_s.untrained": _cfg(paper_ids="arXiv:2403.01713"),
})

# Trainable parameters at num_classes=1000 (a test checks them).
PARAM_COUNTS = {
    "shufflenetv2_x1_0": 2_278_604,
    "shufflenetv2_x1_0_mca_e": 2_278_972,
    "shufflenetv2_x1_0_mca_s": 2_278_716,
}


def _create(name: str, pretrained: bool, attn_layer: Optional[Callable], **kwargs: Any) -> ShuffleNetV2:
    kwargs.setdefault("attn_layer", attn_layer)
    return build_model_with_cfg(ShuffleNetV2, name, pretrained, feature_cfg=dict(flatten_sequential=False), **kwargs)


@register_model
def shufflenetv2_x1_0(pretrained: bool = False, **kwargs: Any) -> ShuffleNetV2:
    """ShuffleNetV2 x1.0, no attention: the paper's baseline."""
    return _create("shufflenetv2_x1_0", pretrained, None, **kwargs)


@register_model
def shufflenetv2_x1_0_mca_e(pretrained: bool = False, **kwargs: Any) -> ShuffleNetV2:
    """ShuffleNetV2 x1.0 with MCA-E before every channel shuffle."""
    return _create("shufflenetv2_x1_0_mca_e", pretrained, partial(MomentChannelAttention, variant="E", inplace=True), **kwargs)


@register_model
def shufflenetv2_x1_0_mca_s(pretrained: bool = False, **kwargs: Any) -> ShuffleNetV2:
    """ShuffleNetV2 x1.0 with MCA-S before every channel shuffle."""
    return _create("shufflenetv2_x1_0_mca_s", pretrained, partial(MomentChannelAttention, variant="S", inplace=True), **kwargs)
