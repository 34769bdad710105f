"""``visionattn train-cls``: train, validate or test a timm image classifier with LightningCLI.

Every choice lives in YAML (``configs/classification/``) or in flags; this entry point adds
none. The ImageNet recipe is ``base_imagenet.yaml`` and each model a small file given after
it (later ``--config`` files override earlier ones)::

    visionattn train-cls fit \\
        --config configs/classification/base_imagenet.yaml \\
        --config configs/classification/imagenet_resnet50_mca_s.yaml \\
        --data.root /data/imagenet

    # resume an interrupted run from its last.ckpt (same configs):
    visionattn train-cls fit --config ... --config ... --ckpt_path last

    # 8 GPUs (the global batch is split over processes), 2 nodes:
    visionattn train-cls fit --config ... --trainer.devices 8 --trainer.num_nodes 2

    visionattn train-cls validate --config ... --ckpt_path outputs/.../checkpoints/best.ckpt
    visionattn train-cls fit --help            # every option, with defaults
    visionattn train-cls fit --config ... --print_config   # the merged configuration

The run's logger name and checkpoint folder follow ``model.model_name``
(:mod:`visionattn.classification.cli`). Lightning is imported only when the command runs, so
``visionattn --help`` stays fast.
"""
from __future__ import annotations

import argparse

# visionattn.cli hands the arguments after "train-cls" to LightningCLI untouched (Subcommand.passthrough).


def run(args: argparse.Namespace) -> None:
    from .cli import classification_cli

    classification_cli(args.argv)
