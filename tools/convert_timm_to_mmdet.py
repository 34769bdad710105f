#!/usr/bin/env python
"""Convert a timm MCA ResNet checkpoint into an mmdet ResNet backbone checkpoint.

    python tools/convert_timm_to_mmdet.py IN.pth OUT.pth [--plugin-name mca] [--trust]

IN is a state dict of one of visionattn's timm models (``resnet50_mca_s``, ``resnet101d_mca_e``,
...; plain timm ResNets work too), either bare or wrapped the usual ways: ``{'state_dict': ...}``
(Lightning), ``{'model': ...}``, and key prefixes such as ``model.``, ``module.`` or ``_orig_mod.``.
OUT is ``{'state_dict': ..., 'meta': ...}`` with mmdet ResNet key names, ready for
``model.backbone.init_cfg=dict(type='Pretrained', checkpoint=OUT)`` in configs/mmdet:

    timm                                  mmdet ResNetMCA (MCA at after_conv3) / ResNet
    conv1 / bn1                           conv1 / bn1
    conv1.{0,1,3,4,6} / bn1 (ResNet-D)    stem.{0,1,3,4,6} / stem.7  (deep_stem=True, avg_down=True)
    layerN.i.{conv,bn}{1,2,3}             same
    layerN.i.downsample.*                 same (ResNet-D: (pool, conv, bn) in both)
    layerN.i.se.cmc.*  (MCA)              layerN.i.<plugin-name>.cmc.*   (mmdet: _abbr_ + postfix)
    fc.*                                  dropped

Only Bottleneck ResNets (50/101/152) are supported: mmdet's BasicBlock takes no plugins.
The script needs only torch, not mmdet. The output is written atomically.
"""
from __future__ import annotations

import argparse
import pickle
import re
import sys
from pathlib import Path
from typing import Dict, Tuple

import torch

try:
    from visionattn.utils import UserError, atomic_path
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from visionattn.utils import UserError, atomic_path

DEPTHS = {(3, 4, 6, 3): 50, (3, 4, 23, 3): 101, (3, 8, 36, 3): 152}
WRAPPER_KEYS = ("state_dict", "model", "module", "model_state_dict", "net")
DEEP_STEM = {"conv1.0": "stem.0", "conv1.1": "stem.1", "conv1.3": "stem.3", "conv1.4": "stem.4",
             "conv1.6": "stem.6", "bn1": "stem.7"}
BLOCK_RE = re.compile(r"^(layer[1-4])\.(\d+)\.(.+)$")
BLOCK_PARTS = re.compile(r"^(conv[123]|bn[123])\.")


def load_state_dict(path: Path, trust: bool = False) -> Dict[str, torch.Tensor]:
    """Read a checkpoint file and unwrap it to a flat name -> tensor dict."""
    if not path.is_file():
        raise UserError(f"{path}: no such checkpoint file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not trust)
    except pickle.UnpicklingError as e:
        raise UserError(
            f"{path}: holds objects besides tensors, which torch.load refuses to unpickle by "
            f"default ({str(e).splitlines()[0]}); pass --trust if you trust the file"
        ) from None
    except Exception as e:  # truncated or not a torch file
        raise UserError(f"{path}: cannot be read as a torch checkpoint ({type(e).__name__}: {e})") from None
    for _ in range(3):
        if isinstance(obj, dict):
            inner = next((obj[k] for k in WRAPPER_KEYS if isinstance(obj.get(k), dict)), None)
            if inner is not None and not any(torch.is_tensor(v) for v in obj.values()):
                obj = inner
                continue
        break
    if hasattr(obj, "state_dict") and not isinstance(obj, dict):  # a pickled nn.Module (--trust)
        obj = obj.state_dict()
    if not isinstance(obj, dict) or not any(torch.is_tensor(v) for v in obj.values()):
        raise UserError(f"{path}: no state dict found (looked in {', '.join(WRAPPER_KEYS)})")
    return {k: v for k, v in obj.items() if torch.is_tensor(v)}


def strip_prefix(sd: Dict[str, torch.Tensor], path: Path) -> Tuple[Dict[str, torch.Tensor], str]:
    """Keep the keys under the prefix that holds the ResNet (``model.``, ``module.``, ...)."""
    anchors = [k[: -len("layer1.0.conv1.weight")] for k in sd if k.endswith("layer1.0.conv1.weight")]
    if not anchors:
        raise UserError(f"{path}: no ResNet found (no key ending in 'layer1.0.conv1.weight')")
    if len(anchors) > 1:
        raise UserError(f"{path}: several ResNets found under prefixes {anchors}; keep one")
    prefix = anchors[0]
    return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}, prefix


def convert(sd: Dict[str, torch.Tensor], path: Path, plugin_name: str = "mca") -> Tuple[Dict[str, torch.Tensor], dict]:
    """Map timm ResNet keys onto mmdet ResNet keys. Returns (state_dict, meta)."""
    sd, prefix = strip_prefix(sd, path)
    deep_stem = "conv1.0.weight" in sd
    blocks = {}
    for k in sd:
        m = BLOCK_RE.match(k)
        if m:
            blocks.setdefault(m.group(1), set()).add(int(m.group(2)))
    counts = tuple(len(blocks.get(f"layer{i}", ())) for i in range(1, 5))
    if not any(k.startswith("layer1.0.conv3.") for k in sd):
        raise UserError(
            f"{path}: a BasicBlock ResNet (ResNet-18/34, block counts {counts}); mmdet's BasicBlock "
            f"takes no plugins, so only Bottleneck ResNets (50/101/152) can be converted"
        )
    if counts not in DEPTHS:
        raise UserError(f"{path}: unsupported ResNet block counts {counts}; supported: {sorted(DEPTHS.values())}")
    out: Dict[str, torch.Tensor] = {}
    has_mca = False
    for key, value in sd.items():
        new = None
        if key.startswith("fc."):
            continue
        m = BLOCK_RE.match(key)
        if m:
            layer, idx, rest = m.groups()
            if BLOCK_PARTS.match(rest):
                new = key
            elif rest.startswith("downsample."):
                # ResNet-D: both are (pool, conv, bn), the pool an Identity / 1x1 AvgPool at stride 1.
                new = key
            elif rest.startswith("se.cmc."):
                new = f"{layer}.{idx}.{plugin_name}.{rest[len('se.'):]}"
                has_mca = True
        else:
            head, _, param = key.rpartition(".")
            if deep_stem and head in DEEP_STEM:
                new = f"{DEEP_STEM[head]}.{param}"
            elif not deep_stem and head in ("conv1", "bn1"):
                new = key
        if new is None:
            raise UserError(
                f"{path}: cannot map key {prefix + key!r} onto mmdet's ResNet (supported: the stem, "
                f"conv/bn/downsample of Bottleneck blocks, MCA attention 'se.cmc.*', fc)"
            )
        out[new] = value
    meta = {
        "source": str(path),
        "converter": "visionattn tools/convert_timm_to_mmdet.py",
        "mmdet_backbone": {"type": "ResNetMCA" if has_mca else "ResNet", "depth": DEPTHS[counts], "deep_stem": deep_stem,
                           "avg_down": deep_stem},
        "mca_plugin": {"name": plugin_name, "position": "after_conv3"} if has_mca else None,
        "dropped": sorted(k for k in sd if k.startswith("fc.")),
    }
    return out, meta


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("src", type=Path, help="timm checkpoint (.pth/.ckpt)")
    parser.add_argument("dst", type=Path, help="output mmdet backbone checkpoint")
    parser.add_argument("--plugin-name", default="mca",
                        help="module name of the MCA plugin in mmdet's Bottleneck: 'mca' + cfg postfix")
    parser.add_argument("--trust", action="store_true",
                        help="allow unpickling arbitrary objects in SRC (only for files you trust)")
    args = parser.parse_args(argv)
    try:
        sd, meta = convert(load_state_dict(args.src, args.trust), args.src, args.plugin_name)
        with atomic_path(args.dst, suffix=".pth") as tmp:
            torch.save({"state_dict": sd, "meta": meta}, tmp)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    b = meta["mmdet_backbone"]
    print(f"wrote {args.dst}: {len(sd)} tensors, ResNet-{b['depth']}{'-D' if b['deep_stem'] else ''}"
          f"{', MCA plugin ' + repr(args.plugin_name) if meta['mca_plugin'] else ', no MCA'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
