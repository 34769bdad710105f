"""LightningModule training any timm image classifier, the MCA ResNets included.

The optimizer and learning-rate schedule are init arguments in LightningCLI's callable form,
so a YAML file chooses them::

    model:
      optimizer:
        class_path: torch.optim.SGD
        init_args: {lr: 0.1, momentum: 0.9, weight_decay: 1.0e-4}
      lr_scheduler:
        class_path: torch.optim.lr_scheduler.MultiStepLR
        init_args: {milestones: [30, 60, 90], gamma: 0.1}

Built in code, they take any ``params -> Optimizer`` / ``optimizer -> LRScheduler`` callable
(e.g. ``functools.partial(torch.optim.SGD, lr=0.05)``) or the same class_path mapping.
"""
from __future__ import annotations

import functools
import importlib
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional, Tuple, Union

import lightning.pytorch as pl
import timm
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from timm.models import is_model, split_model_name_tag
from torch import Tensor
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy

# No `import visionattn` needed: importing this subpackage ran visionattn/__init__, which
# registered the MCA ResNets with timm.
from ..utils import UserError

__all__ = ["DEFAULT_LR_SCHEDULER", "DEFAULT_OPTIMIZER", "ImageClassifier"]

# The MCA paper's ImageNet recipe. Mappings rather than callables because jsonargparse can
# print and override a class_path/init_args default key by key (--model.optimizer.init_args.lr).
DEFAULT_OPTIMIZER: Dict[str, Any] = {
    "class_path": "torch.optim.SGD",
    "init_args": {"lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4},
}
DEFAULT_LR_SCHEDULER: Dict[str, Any] = {
    "class_path": "torch.optim.lr_scheduler.MultiStepLR",
    "init_args": {"milestones": [30, 60, 90], "gamma": 0.1},
}

CallableSpec = Union[Callable[..., Any], Mapping[str, Any]]


def _as_callable(spec: CallableSpec) -> Callable[..., Any]:
    """A callable as given, or a ``{"class_path": ..., "init_args": ...}`` mapping bound as one."""
    if callable(spec):
        return spec
    module_name, _, name = spec["class_path"].rpartition(".")
    cls = getattr(importlib.import_module(module_name), name)
    return functools.partial(cls, **dict(spec.get("init_args") or {}))


class ImageClassifier(pl.LightningModule):
    """A timm model trained with cross-entropy; logs loss and top-1/top-5 accuracy.

    Args:
        model_name: any name ``timm.create_model`` knows, ours (``resnet50_mca_s``) or timm's.
        num_classes: classifier outputs; must equal the number of class folders in the data.
        in_chans: input channels.
        drop_rate: dropout before the classifier.
        checkpoint_path: a local state dict to start from (e.g. a ``.pth`` this package exported);
            read when the module is built, so ``load_from_checkpoint`` needs it too (or
            ``checkpoint_path=None``).
        model_kwargs: further ``timm.create_model`` arguments (``layers``, ``channels``,
            ``block_args``...), to shrink or change an architecture.
        optimizer: ``params -> Optimizer``; default SGD, lr 0.1, momentum 0.9, weight decay 1e-4
            on every parameter (BatchNorm and biases included, as in the paper).
        lr_scheduler: ``optimizer -> LRScheduler`` stepped once per epoch, or None for a constant
            rate; default x0.1 at epochs 30, 60 and 90.
        label_smoothing: cross-entropy label smoothing.
    """

    def __init__(
        self,
        model_name: str = "resnet50_mca_s",
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float = 0.0,
        checkpoint_path: Optional[str] = None,
        model_kwargs: Optional[Dict[str, Any]] = None,
        optimizer: OptimizerCallable = DEFAULT_OPTIMIZER,
        lr_scheduler: Optional[LRSchedulerCallable] = DEFAULT_LR_SCHEDULER,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if checkpoint_path is not None and not Path(checkpoint_path).is_file():
            raise UserError(f"model.checkpoint_path {checkpoint_path!r}: no such file")
        if not is_model(split_model_name_tag(model_name)[0]):
            raise UserError(f"model.model_name {model_name!r}: timm has no such model")
        self.num_classes = num_classes
        self.model = timm.create_model(
            model_name, pretrained=False, num_classes=num_classes, in_chans=in_chans,
            drop_rate=drop_rate, checkpoint_path=checkpoint_path, **(model_kwargs or {}),
        )
        self.optimizer_factory = _as_callable(optimizer)
        self.scheduler_factory = _as_callable(lr_scheduler) if lr_scheduler is not None else None
        self.label_smoothing = label_smoothing
        ks = (1, 5) if num_classes >= 5 else (1,)
        # micro averaging: the fraction of correct images, which is what "top-1" reports.
        metrics = MetricCollection({
            f"top{k}": MulticlassAccuracy(num_classes=num_classes, top_k=k, average="micro") for k in ks
        })
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)

    def training_step(self, batch: Tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x, y = batch
        loss = F.cross_entropy(self(x), y, label_smoothing=self.label_smoothing)
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, sync_dist=True)
        return loss

    def _evaluate(self, batch: Tuple[Tensor, Tensor], stage: str, metrics: MetricCollection) -> None:
        x, y = batch
        logits = self(x)
        # Evaluation loss without smoothing, so it stays comparable across recipes.
        self.log(f"{stage}/loss", F.cross_entropy(logits, y), prog_bar=True, sync_dist=True)
        metrics.update(logits, y)
        self.log_dict(metrics, prog_bar=True, sync_dist=True)

    def validation_step(self, batch: Tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val", self.val_metrics)

    def test_step(self, batch: Tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test", self.test_metrics)

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer), "interval": "epoch"},
        }
