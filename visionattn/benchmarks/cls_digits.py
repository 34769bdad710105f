"""Channel attentions compared by training on real images, on a CPU: scikit-learn's digits.

``sklearn.datasets.load_digits()`` ships 1,797 real handwritten 8x8 digits inside the wheel
(no download). They are upscaled to 32x32 PNGs in an ImageFolder tree with a fixed,
stratified 80/20 train/val split, then one small ResNet is trained with no attention, SE,
ECA, MCA-E and MCA-S in every block, several seeds each, with one recipe, through the same
:class:`~visionattn.classification.ImageClassifier` and
:class:`~visionattn.classification.ImageFolderDataModule` as ``visionattn train-cls``.

The table gives the final-epoch val top-1 (mean ± sample std over seeds; no epoch is picked
on val), the median wall time of an epoch (train + val), and the parameter count. With 359
val images one image is 0.28 points, so differences below a few points are noise.

Run it as ``python tools/benchmark_digits.py`` or ``python -m visionattn.benchmarks.cls_digits``.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from functools import partial
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..utils import UserError, atomic_write_json, atomic_write_text

# ResNet with one BasicBlock per stage, narrowed for 32x32 digits: a 3x3 "deep" stem of
# 16/16/32 channels, stages of 32-256 channels (1.2 M parameters instead of 11.7 M). The
# stem's stride 4 leaves 8x8 maps in the first stage and 1x1 in the last, where a channel's
# std and skewness are 0 and MCA's gate sees only the mean. Passed to timm's "resnet18"
# entry point, whose keyword arguments override its own.
TINY_RESNET: Dict[str, Any] = {
    "layers": [1, 1, 1, 1],
    "channels": [32, 64, 128, 256],
    "stem_type": "deep",
    "stem_width": 16,
}
ATTENTIONS = ("none", "se", "eca", "mca-e", "mca-s")
# Pixel statistics of the 32x32 training images (ink is bright, as in load_digits).
DIGITS_MEAN = (0.30, 0.30, 0.30)
DIGITS_STD = (0.35, 0.35, 0.35)
IMG_SIZE = 32
VAL_FRACTION = 0.2
SPLIT_SEED = 0
# One recipe for every attention: SGD + cosine decay, light crop augmentation and no flips
# (a mirrored digit is another symbol).
RECIPE: Dict[str, Any] = {
    "batch_size": 64,
    "lr": 0.05,
    "momentum": 0.9,
    "weight_decay": 5e-4,
    "scale": (0.7, 1.0),
    "ratio": (0.85, 1.0 / 0.85),
}


def attention_layer(name: str) -> Union[None, str, Callable[..., Any]]:
    """The ``attn_layer`` timm's blocks get for attention ``name`` (one of ATTENTIONS)."""
    from ..layers import MomentChannelAttention

    layers: Dict[str, Union[None, str, Callable[..., Any]]] = {
        "none": None,
        "se": "se",
        "eca": "eca",
        "mca-e": partial(MomentChannelAttention, variant="E"),
        "mca-s": partial(MomentChannelAttention, variant="S"),
    }
    if name not in layers:
        raise UserError(f"--models: unknown attention {name!r}; choose from {', '.join(ATTENTIONS)}")
    return layers[name]


def split_indices(labels: np.ndarray, val_fraction: float, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """A stratified split: each class gives round(n * val_fraction) of its samples to val.

    Depends only on the labels, the fraction and the seed, so the same call gives the
    same split on every machine.
    """
    rng = np.random.default_rng(seed)
    train: List[int] = []
    val: List[int] = []
    for label in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == label))
        n_val = int(round(len(idx) * val_fraction))
        val.extend(idx[:n_val].tolist())
        train.extend(idx[n_val:].tolist())
    return np.sort(np.asarray(train)), np.sort(np.asarray(val))


def prepare_digits(
    root: Union[str, Path], img_size: int = IMG_SIZE, val_fraction: float = VAL_FRACTION, seed: int = SPLIT_SEED,
) -> Dict[str, Any]:
    """Write ``root/{train,val}/<digit>/<index>.png`` once; return its ``layout.json`` record.

    The tree is built in a temporary sibling folder and renamed into place, so ``root`` is
    either absent or complete. An existing ``root`` is reused when it was written with the
    same settings and refused otherwise.
    """
    from PIL import Image
    from sklearn.datasets import load_digits

    root = Path(root)
    params = {"source": "sklearn.datasets.load_digits", "img_size": img_size, "val_fraction": val_fraction, "seed": seed}
    marker = root / "layout.json"

    def existing() -> Optional[Dict[str, Any]]:
        if not root.exists():
            return None
        if marker.is_file():
            record = json.loads(marker.read_text())
            if record.get("params") == params:
                return record
        raise UserError(f"{root}: exists but holds no digits layout with {params}; remove it or choose another --out")

    record = existing()
    if record is not None:
        return record
    digits = load_digits()
    labels = np.asarray(digits.target)
    splits = dict(zip(("train", "val"), split_indices(labels, val_fraction, seed)))
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
    try:
        counts: Dict[str, Dict[str, int]] = {}
        for split, indices in splits.items():
            counts[split] = {}
            for i in indices:
                label = str(labels[i])
                folder = tmp / split / label
                folder.mkdir(parents=True, exist_ok=True)
                pixels = np.round(digits.images[i] * (255.0 / 16.0)).astype(np.uint8)  # values 0..16
                image = Image.fromarray(pixels, mode="L").resize((img_size, img_size), Image.Resampling.BICUBIC)
                image.save(folder / f"{i:04d}.png")
                counts[split][label] = counts[split].get(label, 0) + 1
        record = {"params": params, "counts": counts, "indices": {k: v.tolist() for k, v in splits.items()}}
        atomic_write_json(tmp / "layout.json", record)
        try:
            os.replace(tmp, root)
        except OSError:  # another process finished first; its tree must match ours
            record = existing()
            if record is None:
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return record


def _epoch_timer():
    import lightning.pytorch as pl

    class EpochTimer(pl.Callback):
        """Wall time of each training epoch, the validation that closes it included."""

        def __init__(self) -> None:
            self.seconds: List[float] = []
            self._start = 0.0

        def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            self._start = time.perf_counter()

        def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            self.seconds.append(time.perf_counter() - self._start)

    return EpochTimer()


def train_once(data_root: Path, attention: str, seed: int, epochs: int) -> Dict[str, float]:
    """Train the tiny ResNet with ``attention`` once; final val top-1, s/epoch, parameters."""
    import lightning.pytorch as pl
    import torch

    from ..classification import ImageClassifier, ImageFolderDataModule

    pl.seed_everything(seed, workers=True, verbose=False)
    model = ImageClassifier(
        model_name="resnet18",
        num_classes=10,
        model_kwargs=dict(TINY_RESNET, block_args={"attn_layer": attention_layer(attention)}),
        optimizer=partial(torch.optim.SGD, lr=RECIPE["lr"], momentum=RECIPE["momentum"],
                          weight_decay=RECIPE["weight_decay"]),
        lr_scheduler=partial(torch.optim.lr_scheduler.CosineAnnealingLR, T_max=epochs),
    )
    data = ImageFolderDataModule(
        str(data_root), img_size=IMG_SIZE, batch_size=RECIPE["batch_size"],
        # 32x32 PNGs decode faster than worker processes would start, and workers would
        # take cores from the model.
        num_workers=0, pin_memory=False,
        scale=RECIPE["scale"], ratio=RECIPE["ratio"], hflip=0.0, crop_pct=1.0,
        mean=DIGITS_MEAN, std=DIGITS_STD,
    )
    timer = _epoch_timer()
    trainer = pl.Trainer(
        accelerator="cpu", devices=1, max_epochs=epochs, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
        callbacks=[timer],
    )
    trainer.fit(model, datamodule=data)
    return {
        "top1": 100.0 * float(trainer.callback_metrics["val/top1"]),
        "sec_per_epoch": statistics.median(timer.seconds),
        "params": sum(p.numel() for p in model.model.parameters()),
    }


def run(args: argparse.Namespace) -> Dict[str, Any]:
    import lightning
    import timm
    import torch

    from ..layers import fused_moments

    out = Path(args.out)
    for name in args.models:
        attention_layer(name)  # reject a typo before any training
    if min(args.epochs, args.seeds, args.threads) < 1:
        raise UserError("--epochs, --seeds and --threads must be at least 1")
    torch.set_num_threads(args.threads)
    layout = prepare_digits(out / "data")
    print(f"data: {out / 'data'} (train {sum(layout['counts']['train'].values())}, "
          f"val {sum(layout['counts']['val'].values())} images)", flush=True)
    if any(name.startswith("mca") for name in args.models):
        fused_moments.load()  # build the inference kernel now, not inside a timed epoch
    # One table is the output: Lightning's per-run banners (accelerator, tips) and its advice
    # to add loader workers (left out on purpose, see train_once) would bury it.
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    models: Dict[str, Dict[str, Any]] = {}
    for name in args.models:
        runs = []
        for seed in range(args.seeds):
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=r".*does not have many workers")
                runs.append(train_once(out / "data", name, seed, args.epochs))
            print(f"{name:6s} seed {seed}: top-1 {runs[-1]['top1']:.2f}%  "
                  f"{runs[-1]['sec_per_epoch']:.2f} s/epoch", flush=True)
        top1 = [r["top1"] for r in runs]
        models[name] = {
            "top1_mean": statistics.mean(top1),
            "top1_std": statistics.stdev(top1) if len(top1) > 1 else 0.0,
            "top1_per_seed": top1,
            "sec_per_epoch": statistics.median(r["sec_per_epoch"] for r in runs),
            "params": runs[0]["params"],
        }
    result = {
        "task": "sklearn digits, 32x32, stratified 80/20 split",
        "data": {"root": str(out / "data"), **layout["params"],
                 "train_images": sum(layout["counts"]["train"].values()),
                 "val_images": sum(layout["counts"]["val"].values())},
        "model": {"timm_name": "resnet18", **TINY_RESNET},
        "recipe": {**RECIPE, "epochs": args.epochs, "scheduler": "cosine", "seeds": list(range(args.seeds))},
        "platform": {
            "machine": platform.machine(), "processor": platform.processor(), "cpu_threads": torch.get_num_threads(),
            "python": platform.python_version(), "torch": torch.__version__, "timm": timm.__version__,
            "lightning": lightning.__version__,
        },
        "models": models,
    }
    table = markdown_table(result)
    print(table)
    atomic_write_json(out / "cls_digits.json", result)
    atomic_write_text(out / "cls_digits.md", table)
    return result


def markdown_table(result: Dict[str, Any]) -> str:
    recipe, data, model = result["recipe"], result["data"], result["model"]
    lines = [
        f"# Channel attention on {result['task']}",
        "",
        f"timm `{model['timm_name']}` with layers {model['layers']}, channels {model['channels']}, "
        f"{model['stem_type']} stem of width {model['stem_width']}; {recipe['epochs']} epochs, "
        f"{len(recipe['seeds'])} seeds, batch {recipe['batch_size']}, SGD lr {recipe['lr']} cosine; "
        f"{data['train_images']} train / {data['val_images']} val images; "
        f"torch {result['platform']['torch']} on {result['platform']['cpu_threads']} thread(s).",
        "",
        "Val top-1 at the last epoch, mean ± std over seeds; seconds per epoch (train + val), median.",
        "",
        "| attention | val top-1 (%) | s / epoch | parameters |",
        "|---|---|---|---|",
    ]
    for name, row in result["models"].items():
        lines.append(f"| {name} | {row['top1_mean']:.2f} ± {row['top1_std']:.2f} | "
                     f"{row['sec_per_epoch']:.2f} | {row['params']:,} |")
    return "\n".join(lines) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="outputs/cls_digits",
                        help="folder for data/ (the ImageFolder tree) and cls_digits.json/.md")
    # 8 epochs reach about 98% val top-1; the defaults take about 10 minutes on 2 cores.
    parser.add_argument("--epochs", type=int, default=8, help="epochs per run (the same for every model)")
    parser.add_argument("--seeds", type=int, default=3, help="runs per model, seeds 0..N-1")
    # One thread by default: PyTorch's intra-op threads spin-wait, so on a shared or busy
    # 2-core machine two threads ran a training step about 3x slower than one.
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--models", nargs="+", default=list(ATTENTIONS), metavar="ATTN",
                        help=f"attentions to compare, from: {', '.join(ATTENTIONS)}")


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmark_digits", description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        run(args)
    except UserError as err:
        print(f"benchmark_digits: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
