"""Moment Channel Attention in mmdetection: a plugin and the ``ResNetMCA`` backbone.

mmdet's ResNet/ResNeXt backbones build a plugin as ``Cls(in_channels=C, **cfg)`` inside every
Bottleneck of the selected stages and name the module ``Cls._abbr_`` + postfix (here ``mca``,
so block parameters are ``layer1.0.mca.cmc.weight``). ``after_conv3`` is the paper's slot: after
the last BatchNorm of the block, before the residual add (timm's ``se``).

Registered in ``mmdet.registry.MODELS``: :class:`MCAPlugin` as ``MomentChannelAttention`` and
``MCA`` (usable in any mmdet backbone's ``plugins``), and :class:`ResNetMCA`, mmdet's ResNet with
MCA in its blocks. Nothing of mmdet's is modified: importing this module only registers.

- ``MCAPlugin.init_weights`` restores MCA's own initialisation of its Cross Moment Convolution.
  mmengine calls a child's ``init_weights`` after the parent's ``init_cfg`` initialisers (such
  as a Kaiming or Constant init matching ``Conv1d``) and before a ``Pretrained`` checkpoint is
  loaded, so a backbone-wide init cannot silently turn the gate into a constant while
  pretrained weights still win.
- Configuration mistakes get messages that name the key and the allowed values: an unknown
  ``variant`` or ``kernel_size`` from the plugin itself, and an unknown plugin ``position`` (which
  mmdet's Bottleneck rejects with a bare ``assert``) by :class:`ResNetMCA` validating its
  ``plugins`` list as it builds its stages. The validation only reproduces mmdet's own
  constraints, so every configuration mmdet accepts is still accepted.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence, Union

from mmdet.models.backbones.resnet import BasicBlock, ResNet
from mmdet.registry import MODELS

from ..layers.mca import VARIANTS, MomentChannelAttention, resolve_kernel_size, resolve_moments
from ..layers.moments import MOMENT_NAMES
from ..utils import UserError

__all__ = ["ALLOWED_POSITIONS", "MCAConfigError", "MCAPlugin", "ResNetMCA", "validate_plugins"]

ALLOWED_POSITIONS = ("after_conv1", "after_conv2", "after_conv3")
REGISTERED_NAMES = ("MomentChannelAttention", "MCA")


class MCAConfigError(UserError, ValueError):
    """A bad MCA / plugin setting in an mmdet config; the message names the key."""


class MCAPlugin(MomentChannelAttention):
    """:class:`~visionattn.layers.mca.MomentChannelAttention` as an mmdet backbone plugin.

    Config keys (besides ``type``): ``variant`` ('E', 'S', 'T' or a tuple of moment names),
    ``kernel_size`` (odd int, None for the paper's default, or 'auto') and ``eps``.
    ``in_channels`` is supplied by the backbone.
    """

    _abbr_ = "mca"  # mmdet names the plugin module ``_abbr_`` + postfix: ``layer1.0.mca``

    def __init__(
        self,
        in_channels: Optional[int] = None,
        variant: Union[str, Sequence[str]] = "S",
        kernel_size: Union[int, str, None] = None,
        eps: float = 1e-5,
        **kwargs: Any,
    ):
        if isinstance(variant, list):  # configs round-trip tuples as lists
            variant = tuple(variant)
        try:
            resolve_moments(variant)
        except (ValueError, TypeError):
            raise MCAConfigError(
                f"MCA plugin: variant={variant!r} is not allowed; allowed values: "
                f"{', '.join(repr(v) for v in VARIANTS)} or a tuple of distinct moment names "
                f"from {MOMENT_NAMES}"
            ) from None
        try:
            resolve_kernel_size(kernel_size, variant, in_channels)
        except (ValueError, TypeError) as e:
            raise MCAConfigError(
                f"MCA plugin: kernel_size={kernel_size!r} is not allowed; allowed values: an odd "
                f"positive int, None (the paper's default per variant) or 'auto' ({e})"
            ) from None
        # mmdet hands every plugin ``in_channels``; the layer calls it ``channels``.
        super().__init__(channels=in_channels, variant=variant, kernel_size=kernel_size, eps=eps, **kwargs)

    def init_weights(self) -> None:
        """MCA's own initialisation of the Cross Moment Convolution (PyTorch's Conv1d default)."""
        self.cmc.reset_parameters()


for _name in REGISTERED_NAMES:
    if MODELS.get(_name) is None:
        MODELS.register_module(name=_name, module=MCAPlugin)


def _plugin_abbr(cfg: Any) -> Optional[str]:
    """The module-name stem mmdet will give a plugin cfg, when it is one of ours."""
    kind = cfg.get("type") if isinstance(cfg, dict) else None
    if kind is MCAPlugin or kind in REGISTERED_NAMES:
        return MCAPlugin._abbr_
    return None


def validate_plugins(plugins: Any, num_stages: int = 4, block: Optional[type] = None) -> None:
    """Check a ResNet ``plugins`` list the way mmdet does, with messages naming the key.

    Raises :class:`MCAConfigError` (a ``ValueError``) on the first problem.
    """
    if plugins is None:
        return
    if not isinstance(plugins, (list, tuple)):
        raise MCAConfigError(f"backbone plugins must be a list of dicts, got {type(plugins).__name__}")
    if plugins and block is not None and issubclass(block, BasicBlock):
        raise MCAConfigError(
            "backbone plugins: mmdet's BasicBlock (ResNet-18/34) takes no plugins; "
            "use depth 50, 101 or 152 (Bottleneck blocks)"
        )
    names_per_stage: list = [dict() for _ in range(num_stages)]
    for i, plugin in enumerate(plugins):
        where = f"plugins[{i}]"
        if not isinstance(plugin, dict) or "cfg" not in plugin:
            raise MCAConfigError(f"{where} must be a dict with keys 'cfg', 'position' and optionally 'stages'")
        position = plugin.get("position")
        if position not in ALLOWED_POSITIONS:
            raise MCAConfigError(
                f"{where}.position={position!r} is not allowed; allowed values: "
                f"{', '.join(repr(p) for p in ALLOWED_POSITIONS)}"
            )
        stages = plugin.get("stages")
        if stages is not None and len(stages) != num_stages:
            raise MCAConfigError(
                f"{where}.stages={tuple(stages)!r} must have one bool per stage ({num_stages} values)"
            )
        abbr = _plugin_abbr(plugin["cfg"])
        if abbr is None:
            continue
        name = abbr + str(plugin["cfg"].get("postfix", ""))
        for s in range(num_stages):
            if stages is None or stages[s]:
                if name in names_per_stage[s]:
                    raise MCAConfigError(
                        f"{where}: a second MCA plugin named {name!r} in stage {s + 1} (first: "
                        f"{names_per_stage[s][name]}); give each MCA plugin of a block a distinct "
                        f"cfg 'postfix', e.g. postfix='_2'"
                    )
                names_per_stage[s][name] = where


@MODELS.register_module()
class ResNetMCA(ResNet):
    """mmdet's ResNet with Moment Channel Attention in every Bottleneck of the chosen stages.

    A subclass registered as ``ResNetMCA``, so mmdet's own ``ResNet`` stays as mmdet wrote it.
    MCA is added through mmdet's plugin mechanism (:class:`MCAPlugin`, module name ``mca``), so
    checkpoint keys are ``layerN.i.mca.cmc.*`` as :file:`tools/convert_timm_to_mmdet.py` writes.

    Args:
        mca: the block's settings (``variant``, ``kernel_size``, ``eps``, ``postfix``: see
            :class:`MCAPlugin`); ``None`` builds a plain ResNet.
        mca_stages: one bool per stage, whether its blocks get MCA.
        mca_position: where in the Bottleneck: ``after_conv3`` is the paper's slot (after the
            last BatchNorm, before the residual add); ``after_conv1``/``after_conv2`` also work.
        plugins: further mmdet plugins (any type), placed before MCA.
        **kwargs: mmdet ResNet's arguments (``depth``, ``deep_stem``, ``init_cfg``, ...).

    Unlike mmdet's ResNet, a bad ``plugins`` list (unknown position, BasicBlock depth, two MCA
    blocks with one name) raises :class:`MCAConfigError` naming the key, not a bare assert.
    """

    def __init__(
        self,
        *args: Any,
        mca: Optional[dict] = None,
        mca_stages: Sequence[bool] = (True, True, True, True),
        mca_position: str = "after_conv3",
        plugins: Optional[Sequence[dict]] = None,
        **kwargs: Any,
    ):
        plugins = list(plugins or [])
        if mca is not None:
            plugins.append(dict(cfg=dict(type=MCAPlugin, **mca), stages=tuple(mca_stages), position=mca_position))
        super().__init__(*args, plugins=plugins or None, **kwargs)

    def make_stage_plugins(self, plugins: Any, stage_idx: int):
        if stage_idx == 0:
            validate_plugins(plugins, self.num_stages, self.block)
        return super().make_stage_plugins(plugins, stage_idx)
