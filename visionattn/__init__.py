"""visionattn: attention modules for vision.

``import visionattn`` registers the MCA ResNets, ShuffleNetV2s and the FER2013 mini-Xception with
timm (``timm.list_models("*mca*")``): at once when timm is already imported, else the moment
timm is. So ``import visionattn`` alone loads neither torch nor timm, and the table commands of
``visionattn`` (evaluate, annotations) start in a fraction of a second. Host-library glue that
needs optional packages (mmdet, the expression stack) lives in its own modules and is imported
only where it is used.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

__version__ = "0.1.0"
__all__ = ["layers", "models", "__version__"]


def _register_timm_models() -> None:
    importlib.import_module(f"{__name__}.models")


class _RegisterWhenTimmLoads(importlib.abc.MetaPathFinder):
    """Finds nothing itself: hands back timm's own spec with a loader that registers our models
    right after timm's package has run."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "timm":
            return None
        sys.meta_path.remove(self)  # once only; the other finders locate the real timm
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
            exec_timm = spec.loader.exec_module

            def exec_module(module):
                exec_timm(module)
                _register_timm_models()

            spec.loader.exec_module = exec_module
        return spec


def __getattr__(name: str):
    if name in ("layers", "models"):  # visionattn.layers / visionattn.models without importing them first
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if sys.modules.get("timm") is not None:  # None: an import of timm was blocked
    _register_timm_models()
elif not any(isinstance(finder, _RegisterWhenTimmLoads) for finder in sys.meta_path):
    sys.meta_path.insert(0, _RegisterWhenTimmLoads())
