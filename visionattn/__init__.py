"""visionattn: attention modules for vision.

``import visionattn`` registers the MCA ResNets with timm (``timm.list_models("*mca*")``).
Host-library glue that needs optional packages (mmdet) lives in its own modules and is
imported only where it is used.
"""
__version__ = "0.1.0"

from . import layers, models  # noqa: F401,E402

__all__ = ["layers", "models", "__version__"]
