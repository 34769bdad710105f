"""LightningDataModule over an ImageFolder tree, with timm's transforms.

Layout::

    root/train/<class>/*.jpg|png...
    root/val/<class>/...          (the same class folders)

Training images go through timm's training pipeline (random-resized crop, flips, optional
AutoAugment/RandAugment and random erasing); evaluation images are resized to
``img_size / crop_pct`` and center-cropped to ``img_size``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, List, Optional, Tuple

import lightning.pytorch as pl
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, create_transform
from torch.utils.data import DataLoader
from torchvision.datasets import ImageFolder

from ..utils import UserError

__all__ = ["ImageFolderDataModule", "class_folders"]


def class_folders(folder: Path) -> List[str]:
    """The class names ImageFolder would find: the sorted subfolder names."""
    return sorted(entry.name for entry in os.scandir(folder) if entry.is_dir())


class ImageFolderDataModule(pl.LightningDataModule):
    """train/ and val/ folders of class subfolders, read with torchvision's ImageFolder.

    Args:
        root: folder holding ``train_dir`` and ``val_dir``.
        img_size: square crop size fed to the model.
        batch_size: images per optimizer step over ALL processes; with DDP each of the
            ``trainer.world_size`` processes (devices x nodes) loads ``batch_size / world_size``,
            so changing the GPU count keeps the recipe.
        num_workers: loader processes per training process.
        train_dir, val_dir: subfolder names under ``root``.
        test_dir: subfolder for ``test``; None evaluates ``val_dir`` (ImageNet's test labels
            are not public).
        scale, ratio: random-resized-crop area and aspect-ratio ranges.
        hflip, vflip: flip probabilities.
        color_jitter: brightness/contrast/saturation jitter factor; None for none.
        auto_augment: timm policy string, e.g. ``"rand-m9-mstd0.5-inc1"`` or ``"original"``.
        re_prob: random erasing probability.
        interpolation: resize interpolation (``"bilinear"``, ``"bicubic"``, ``"random"``...).
        crop_pct: evaluation center-crop fraction (0.875: resize to 256, crop 224).
        mean, std: per-channel normalization (ImageNet's by default).
        pin_memory: page-locked batches for faster host-to-GPU copies.
    """

    def __init__(
        self,
        root: str,
        img_size: int = 224,
        batch_size: int = 256,
        num_workers: int = 8,
        train_dir: str = "train",
        val_dir: str = "val",
        test_dir: Optional[str] = None,
        scale: Tuple[float, float] = (0.08, 1.0),
        ratio: Tuple[float, float] = (3 / 4, 4 / 3),
        hflip: float = 0.5,
        vflip: float = 0.0,
        color_jitter: Optional[float] = None,
        auto_augment: Optional[str] = None,
        re_prob: float = 0.0,
        interpolation: str = "bilinear",
        crop_pct: float = 0.875,
        mean: Tuple[float, ...] = IMAGENET_DEFAULT_MEAN,
        std: Tuple[float, ...] = IMAGENET_DEFAULT_STD,
        pin_memory: bool = True,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.root = Path(root)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.train_transform = create_transform(
            img_size, is_training=True, scale=tuple(scale), ratio=tuple(ratio), hflip=hflip, vflip=vflip,
            color_jitter=color_jitter, auto_augment=auto_augment, re_prob=re_prob,
            interpolation=interpolation, mean=tuple(mean), std=tuple(std),
        )
        self.eval_transform = create_transform(
            img_size, is_training=False, interpolation=interpolation, crop_pct=crop_pct,
            mean=tuple(mean), std=tuple(std),
        )
        self.classes: List[str] = []
        self.train_set: Optional[ImageFolder] = None
        self.val_set: Optional[ImageFolder] = None
        self.test_set: Optional[ImageFolder] = None

    def _folder(self, name: str) -> Path:
        if not self.root.is_dir():
            raise UserError(f"data.root {str(self.root)!r}: no such folder")
        folder = self.root / name
        if not folder.is_dir():
            raise UserError(f"data folder {str(folder)!r}: not found (expected {self.root}/{name}/<class>/<image>)")
        return folder

    def _dataset(self, name: str, transform: Callable) -> ImageFolder:
        """ImageFolder for ``root/name``, whose class folders must be those of train/."""
        folder = self._folder(name)
        classes = class_folders(folder)
        if not classes:
            raise UserError(f"data folder {str(folder)!r}: has no class subfolders")
        if self.classes and classes != self.classes:
            missing, extra = sorted(set(self.classes) - set(classes)), sorted(set(classes) - set(self.classes))
            raise UserError(
                f"data folder {str(folder)!r}: class folders differ from "
                f"{str(self.root / self.hparams.train_dir)!r} (missing: {missing[:5]}, extra: {extra[:5]})"
            )
        try:
            return ImageFolder(str(folder), transform=transform)
        except FileNotFoundError as err:  # a class folder without a readable image
            raise UserError(f"data folder {str(folder)!r}: {err}") from None

    def setup(self, stage: str) -> None:
        # train/ defines the class list (and its order: the label ids) for every stage.
        self.classes = class_folders(self._folder(self.hparams.train_dir))
        if stage == "fit":
            self.train_set = self._dataset(self.hparams.train_dir, self.train_transform)
        if stage in ("fit", "validate"):
            self.val_set = self._dataset(self.hparams.val_dir, self.eval_transform)
        if stage == "test":
            self.test_set = self._dataset(self.hparams.test_dir or self.hparams.val_dir, self.eval_transform)
        # The class count is a property of the data, so check the model against it here
        # rather than linking config keys: a mismatch would otherwise train silently.
        model = self.trainer.lightning_module if self.trainer is not None else None
        num_classes = getattr(model, "num_classes", None)
        if num_classes is not None and num_classes != len(self.classes):
            raise UserError(
                f"model.num_classes is {num_classes} but {str(self.root / self.hparams.train_dir)!r} "
                f"has {len(self.classes)} class folders; set model.num_classes: {len(self.classes)}"
            )

    def _per_process_batch(self) -> int:
        world = self.trainer.world_size if self.trainer is not None else 1
        if self.batch_size % world:
            raise UserError(f"data.batch_size {self.batch_size} does not split evenly over {world} processes")
        return self.batch_size // world

    def _loader(self, dataset: Optional[ImageFolder], train: bool) -> DataLoader:
        if dataset is None:
            raise RuntimeError("setup() has not built this split")
        return DataLoader(
            dataset, batch_size=self._per_process_batch(), shuffle=train, drop_last=train,
            num_workers=self.num_workers, pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, train=False)
