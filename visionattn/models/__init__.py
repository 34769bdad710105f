"""Models. Importing registers the MCA ResNets and ShuffleNetV2s with timm."""
from typing import List

from . import resnet_mca, shufflenetv2  # noqa: F401  (register timm entrypoints)
from . import mini_xception  # noqa: F401  (registers mini_xception_fer2013)

PARAM_COUNTS = {**resnet_mca.PARAM_COUNTS, **shufflenetv2.PARAM_COUNTS}


def model_names() -> List[str]:
    """Every timm model name this package registers, in a stable order."""
    return list(PARAM_COUNTS)


__all__ = ["PARAM_COUNTS", "model_names"]
