"""mmdetection glue: MCA as a ResNet backbone plugin and the ``ResNetMCA`` backbone.

Importing this package (it needs mmdet 3.x and mmcv 2.x with compiled ops; install them with
``tools/install_mmdet.sh``) registers, in ``mmdet.registry.MODELS``, :class:`ResNetMCA` and
:class:`MCAPlugin` (as ``MomentChannelAttention`` and ``MCA``); it changes none of mmdet's
classes. Configs load it with::

    custom_imports = dict(imports=['visionattn.mmdet'], allow_failed_imports=False)
    model = dict(backbone=dict(type='ResNetMCA', mca=dict(variant='S', kernel_size=3)))

``import visionattn`` does not import this package, so visionattn works without mmdet.
"""
from .plugin import ALLOWED_POSITIONS, MCAConfigError, MCAPlugin, ResNetMCA, validate_plugins

__all__ = ["ALLOWED_POSITIONS", "MCAConfigError", "MCAPlugin", "ResNetMCA", "validate_plugins"]
