"""Write a plain timm state dict next to every Lightning checkpoint.

A Lightning ``.ckpt`` nests the weights under ``state_dict`` with the LightningModule's
attribute prefix (``model.conv1.weight``) beside optimizer and loop state. The ``.pth`` that
:class:`ExportStateDict` writes beside it holds only the timm model's own keys, so::

    timm.create_model("resnet50_mca_s", num_classes=1000, checkpoint_path="checkpoints/best.pth")

loads it as is (after ``import visionattn``). ``best.ckpt`` gets ``best.pth``, ``last.ckpt``
gets ``last.pth``; when ModelCheckpoint deletes a checkpoint that left the top k, its ``.pth``
goes too. Use ``save_last: true`` rather than ``"link"``: a linked last.ckpt is not a save,
so it gets no ``last.pth``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional

import lightning.pytorch as pl
import torch
from lightning.fabric.plugins import CheckpointIO
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.callbacks import Callback

from ..utils import UserError, atomic_path

__all__ = ["ExportStateDict", "export_path"]


def export_path(ckpt_path: _PATH) -> Path:
    """Where the plain state dict of checkpoint ``ckpt_path`` goes: same folder and stem, ``.pth``."""
    return Path(ckpt_path).with_suffix(".pth")


class _ExportingCheckpointIO(CheckpointIO):
    """Delegates to the strategy's own CheckpointIO and mirrors saves and removals as ``.pth``.

    Hooking the IO rather than ModelCheckpoint catches every save, whichever callback (or
    ``trainer.save_checkpoint``) asks for it, with the file name it chose; the strategy calls
    it on global rank 0 only.
    """

    def __init__(self, inner: CheckpointIO, prefix: str) -> None:
        self.inner = inner
        self.prefix = prefix

    def save_checkpoint(self, checkpoint: Dict[str, Any], path: _PATH, storage_options: Optional[Any] = None) -> None:
        self.inner.save_checkpoint(checkpoint, path, storage_options=storage_options)
        state = {
            key[len(self.prefix):]: value.detach().cpu()
            for key, value in checkpoint["state_dict"].items() if key.startswith(self.prefix)
        }
        if not state:
            raise UserError(f"ExportStateDict: no checkpoint weights start with prefix {self.prefix!r}")
        with atomic_path(export_path(path)) as tmp:
            torch.save(state, tmp)

    def load_checkpoint(self, path: _PATH, map_location: Optional[Any] = None, weights_only: Optional[bool] = None) -> Dict[str, Any]:
        return self.inner.load_checkpoint(path, map_location=map_location, weights_only=weights_only)

    def remove_checkpoint(self, path: _PATH) -> None:
        self.inner.remove_checkpoint(path)
        export_path(path).unlink(missing_ok=True)

    def teardown(self) -> None:
        self.inner.teardown()


class ExportStateDict(Callback):
    """Whenever Lightning saves a checkpoint, also write ``<dir>/<stem>.pth``: the bare model weights.

    Args:
        prefix: the LightningModule attribute holding the timm model, with a trailing dot;
            ``"model."`` for :class:`~visionattn.classification.ImageClassifier`.
    """

    def __init__(self, prefix: str = "model.") -> None:
        self.prefix = prefix

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        io = trainer.strategy.checkpoint_io
        if not isinstance(io, _ExportingCheckpointIO):
            trainer.strategy.checkpoint_io = _ExportingCheckpointIO(io, self.prefix)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        io = trainer.strategy.checkpoint_io
        if isinstance(io, _ExportingCheckpointIO):
            trainer.strategy.checkpoint_io = io.inner
