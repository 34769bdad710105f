#!/usr/bin/env python
"""Train an mmdetection model (configs/mmdet) with mmengine's Runner.

    python tools/train_det.py configs/mmdet/faster-rcnn_r50-mca-s_fpn_1x_coco.py \
        [--work-dir DIR] [--resume [auto|CKPT]] [--amp] [--cfg-options k=v ...] [--launcher pytorch]

Multi-GPU: tools/dist_train.sh CONFIG GPUS [args]. Needs the mmdet stack (tools/install_mmdet.sh).
"""
from __future__ import annotations

import argparse
import os.path as osp
import sys

from mmengine.config import Config
from mmengine.runner import Runner

from visionattn.mmdet.runner_config import add_runner_arguments, announce_local_rank, load_config


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Train a detector (mmdet 3.x config)")
    parser.add_argument("config", help="config file")
    add_runner_arguments(parser, "where logs and checkpoints go (default: ./work_dirs/<config name>)",
                         "override config keys, e.g. train_cfg.max_epochs=1 'model.backbone.init_cfg=None'")
    parser.add_argument("--resume", nargs="?", const="auto", default=None, metavar="CKPT",
                        help="resume training: from CKPT, or without a value (or 'auto') from the "
                             "latest checkpoint in the work dir")
    parser.add_argument("--amp", action="store_true", help="automatic mixed precision")
    parser.add_argument("--auto-scale-lr", action="store_true", help="scale the LR by the total batch size")
    args = parser.parse_args(argv)
    announce_local_rank(args)
    return args


def build_config(args) -> Config:
    cfg = load_config(args)
    if args.amp:
        cfg.optim_wrapper.type = "AmpOptimWrapper"
        cfg.optim_wrapper.loss_scale = "dynamic"
    if args.auto_scale_lr:
        if "auto_scale_lr" not in cfg or "base_batch_size" not in cfg.auto_scale_lr:
            raise SystemExit("error: the config has no auto_scale_lr.base_batch_size")
        cfg.auto_scale_lr.enable = True
    if args.resume == "auto":
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        if not osp.isfile(args.resume):
            raise SystemExit(f"error: --resume checkpoint not found: {args.resume}")
        cfg.resume = True
        cfg.load_from = args.resume
    return cfg


def main(argv=None) -> Runner:
    cfg = build_config(parse_args(argv))
    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner


if __name__ == "__main__":
    main(sys.argv[1:])
