"""mmdetection glue: MCA as a ResNet backbone plugin.

Importing this package (it needs mmdet 3.x and mmcv 2.x with compiled ops; install them with
``tools/install_mmdet.sh``) registers :class:`MCAPlugin` in ``mmdet.registry.MODELS`` as
``MomentChannelAttention`` and ``MCA``. Configs load it with::

    custom_imports = dict(imports=['visionattn.mmdet'], allow_failed_imports=False)
    model = dict(backbone=dict(plugins=[dict(
        cfg=dict(type='MomentChannelAttention', variant='S'),
        stages=(True, True, True, True), position='after_conv3')]))

``import visionattn`` does not import this package, so visionattn works without mmdet.
"""
from .plugin import ALLOWED_POSITIONS, MCAConfigError, MCAPlugin, validate_plugins

__all__ = ["ALLOWED_POSITIONS", "MCAConfigError", "MCAPlugin", "validate_plugins"]
