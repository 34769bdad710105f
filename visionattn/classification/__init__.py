"""Image classification with Lightning: any timm model (the MCA ResNets included) on an ImageFolder.

- :class:`ImageClassifier`: the LightningModule (timm model, cross-entropy, top-1/top-5).
- :class:`ImageFolderDataModule`: train/ and val/ class folders with timm's transforms.
- :class:`ExportStateDict`: writes a plain timm ``.pth`` beside every checkpoint.

The command line is ``visionattn train-cls`` (:mod:`visionattn.classification.command`).
Lightning loads on first attribute access, so importing this package stays cheap.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ImageClassifier": ".module",
    "ImageFolderDataModule": ".datamodule",
    "ExportStateDict": ".export",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
