"""Per-frame features from a 2D CNN: any timm backbone, pooled, optionally frozen.

The paper uses a ResNet-18 pretrained for expression recognition (AffectNet) and frozen.
Weights only ever come from a local file: ``pretrained=False`` always, nothing is downloaded.
``resnet18_mca_e`` (and the other MCA / ShuffleNetV2 names of this package) are registered with
timm by :mod:`visionattn.models`, which is always imported before this subpackage.
"""
from __future__ import annotations

import os
from typing import Optional, Sequence, Union

import numpy as np
import timm
import torch
import torch.nn.functional as F
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import load_state_dict
from torch import Tensor, nn

from ..utils import UserError

FrameBatch = Union[np.ndarray, Tensor, Sequence[np.ndarray]]


def frames_to_rgb(frames: FrameBatch) -> Tensor:
    """uint8 BGR images as OpenCV reads them, ``(N, H, W, 3)`` array/tensor or a list of
    ``(H, W, 3)`` arrays, -> float RGB ``(N, 3, H, W)`` in ``[0, 1]``; a float tensor that is
    already ``(N, 3, H, W)`` RGB passes through as float32."""
    if isinstance(frames, (list, tuple)):
        frames = np.stack(frames)
    if isinstance(frames, np.ndarray):
        frames = torch.from_numpy(np.ascontiguousarray(frames))
    if frames.dtype == torch.uint8:
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"uint8 frames must be (N, H, W, 3) BGR, got {tuple(frames.shape)}")
        return frames.flip(-1).permute(0, 3, 1, 2).float() / 255.0
    if frames.ndim != 4 or frames.shape[1] != 3:
        raise ValueError(f"float frames must be (N, 3, H, W) RGB in [0, 1], got {tuple(frames.shape)}")
    return frames.float()


class FrameEncoder(nn.Module):
    """A timm backbone without classifier: ``(N, in_chans, H, W)`` normalised -> ``(N, D)`` pooled features.

    Args:
        backbone: timm model name; ``D`` is its ``num_features`` (512 for ``resnet18``).
        checkpoint_path: local weights (a state dict, or a checkpoint holding one under
            ``state_dict``/``model``); the backbone's classifier weights in it (e.g. an AffectNet
            ``fc``) are ignored, every other key must match.
        frozen: eval mode for good (``train()`` leaves it in eval) and no gradients.
        in_chans: input channels.
        image_size: side that :meth:`encode_frames` resizes frames to; ``None`` takes the
            backbone's pretrained input size (224 for ResNets).
        pool_grid: ``g``: average-pool the last feature map onto a ``g x g`` grid instead of one
            vector, so ``D = g * g * num_features`` and the features keep *where* in the face
            something changed (brows or mouth), which a global average washes out.
    """

    def __init__(
        self,
        backbone: str = "resnet18",
        checkpoint_path: Optional[str] = None,
        frozen: bool = True,
        in_chans: int = 3,
        image_size: Optional[int] = None,
        pool_grid: int = 1,
    ) -> None:
        super().__init__()
        if pool_grid < 1:
            raise UserError(f"pool_grid {pool_grid}: must be >= 1")
        self.pool_grid = pool_grid
        self.model = timm.create_model(backbone, num_classes=0, pretrained=False, in_chans=in_chans)
        if checkpoint_path:
            self._load(checkpoint_path)
        self.frozen = frozen
        self.num_features: int = self.model.num_features * pool_grid * pool_grid
        cfg = self.model.pretrained_cfg
        self.image_size = image_size or int(cfg.get("input_size", (3, 224, 224))[-1])
        # Buffers so they follow .to(device); not saved, they come from the backbone's config.
        self.register_buffer("mean", torch.tensor(cfg.get("mean", IMAGENET_DEFAULT_MEAN)).view(1, -1, 1, 1),
                             persistent=False)
        self.register_buffer("std", torch.tensor(cfg.get("std", IMAGENET_DEFAULT_STD)).view(1, -1, 1, 1),
                             persistent=False)
        if frozen:
            self.model.requires_grad_(False)
            self.model.eval()

    def _load(self, path: str) -> None:
        if not os.path.isfile(path):
            raise UserError(f"backbone checkpoint not found: {path}")
        state = load_state_dict(path, weights_only=True)
        classifier = self.model.pretrained_cfg.get("classifier") or ""
        if classifier:
            state = {k: v for k, v in state.items() if not k.startswith(classifier + ".")}
        try:
            self.model.load_state_dict(state, strict=True)
        except RuntimeError as err:
            arch = self.model.pretrained_cfg.get("architecture")
            raise UserError(f"{path} does not fit backbone {arch}: {err}") from err

    def train(self, mode: bool = True) -> "FrameEncoder":
        super().train(mode)
        if self.frozen:
            # BatchNorm statistics must stay those of the pretrained weights.
            self.model.eval()
        return self

    def forward(self, x: Tensor) -> Tensor:
        """``(N, C, H, W)`` float, already normalised -> ``(N, D)``."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            if self.pool_grid == 1:
                return self.model(x)
            fmap = self.model.forward_features(x)
            if fmap.ndim != 4:
                raise UserError(f"pool_grid {self.pool_grid} needs a CNN feature map; "
                                f"{type(self.model).__name__} gives shape {tuple(fmap.shape)}")
            return F.adaptive_avg_pool2d(fmap, self.pool_grid).flatten(1)

    def preprocess(self, frames: FrameBatch) -> Tensor:
        """Frames -> ``(N, 3, S, S)`` normalised float on the encoder's device (``S = image_size``).

        Accepted: uint8 BGR images as OpenCV reads them, ``(N, H, W, 3)`` array/tensor or a list of
        ``(H, W, 3)`` arrays; or a float tensor ``(N, 3, H, W)``, RGB in ``[0, 1]``.
        """
        x = frames_to_rgb(frames).to(self.mean.device)
        if x.shape[-2:] != (self.image_size, self.image_size):
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False,
                              antialias=True)
        return (x - self.mean) / self.std

    @torch.no_grad()
    def encode_frames(self, frames: FrameBatch, batch_size: int = 64) -> Tensor:
        """Features ``(N, D)`` of ``N`` frames (formats as :meth:`preprocess`), ``batch_size`` at a time."""
        n = len(frames)
        feats = [self(self.preprocess(frames[i:i + batch_size])) for i in range(0, n, batch_size)]
        return torch.cat(feats) if feats else torch.zeros(0, self.num_features, device=self.mean.device)
