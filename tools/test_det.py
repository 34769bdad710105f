#!/usr/bin/env python
"""Evaluate an mmdetection checkpoint (configs/mmdet) with mmengine's Runner.

    python tools/test_det.py CONFIG CHECKPOINT [--work-dir DIR] [--out results.pkl]
        [--show-dir DIR] [--cfg-options k=v ...] [--launcher pytorch]

Prints and logs the config's test metrics (COCO bbox/segm AP for configs/mmdet).
"""
from __future__ import annotations

import argparse
import os.path as osp
import sys

from mmengine.config import Config, ConfigDict
from mmengine.runner import Runner

from visionattn.mmdet.runner_config import add_runner_arguments, announce_local_rank, load_config


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Test (evaluate) a detector (mmdet 3.x config)")
    parser.add_argument("config", help="config file")
    parser.add_argument("checkpoint", help="checkpoint file")
    add_runner_arguments(parser, "where logs and metrics go (default: ./work_dirs/<config name>)",
                         "override config keys, e.g. test_evaluator.classwise=True")
    parser.add_argument("--out", help="dump the raw predictions to this .pkl file")
    parser.add_argument("--show-dir", help="draw predictions into this folder (under the work dir's timestamp folder)")
    args = parser.parse_args(argv)
    announce_local_rank(args)
    return args


def build_config(args) -> Config:
    cfg = load_config(args)
    if not osp.isfile(args.checkpoint):
        raise SystemExit(f"error: checkpoint file not found: {args.checkpoint}")
    if args.out is not None and not args.out.endswith((".pkl", ".pickle")):
        raise SystemExit("error: --out must be a .pkl or .pickle file")
    cfg.load_from = args.checkpoint
    if args.show_dir:
        vis = cfg.default_hooks.get("visualization")
        if vis is None:
            raise SystemExit("error: --show-dir needs default_hooks.visualization in the config")
        vis.draw = True
        vis.test_out_dir = args.show_dir
    if args.out:
        dump = ConfigDict(type="DumpDetResults", out_file_path=args.out)
        evaluators = cfg.test_evaluator if isinstance(cfg.test_evaluator, list) else [cfg.test_evaluator]
        cfg.test_evaluator = [*evaluators, dump]
    return cfg


def main(argv=None):
    cfg = build_config(parse_args(argv))
    runner = Runner.from_cfg(cfg)
    return runner.test()


if __name__ == "__main__":
    main(sys.argv[1:])
