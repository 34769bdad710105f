#!/usr/bin/env python
"""Evaluate an mmdetection checkpoint (configs/mmdet) with mmengine's Runner.

    python tools/test_det.py CONFIG CHECKPOINT [--work-dir DIR] [--out results.pkl]
        [--show-dir DIR] [--cfg-options k=v ...] [--launcher pytorch]

Prints and logs the config's test metrics (COCO bbox/segm AP for configs/mmdet).
"""
from __future__ import annotations

import argparse
import os
import os.path as osp
import sys

from mmengine.config import Config, ConfigDict, DictAction
from mmengine.runner import Runner


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Test (evaluate) a detector (mmdet 3.x config)")
    parser.add_argument("config", help="config file")
    parser.add_argument("checkpoint", help="checkpoint file")
    parser.add_argument("--work-dir", help="where logs and metrics go (default: ./work_dirs/<config name>)")
    parser.add_argument("--out", help="dump the raw predictions to this .pkl file")
    parser.add_argument("--show-dir", help="draw predictions into this folder (under the work dir's timestamp folder)")
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, default=None,
                        help="override config keys, e.g. test_evaluator.classwise=True")
    parser.add_argument("--launcher", choices=["none", "pytorch", "slurm", "mpi"], default="none",
                        help="job launcher")
    parser.add_argument("--local_rank", "--local-rank", type=int, default=0)
    args = parser.parse_args(argv)
    if args.launcher != "none":
        # torch.distributed.launch passes --local_rank; a single-process run must not announce a
        # rank, which every process it starts (a Lightning DDP launcher, say) would inherit.
        os.environ.setdefault("LOCAL_RANK", str(args.local_rank))
    return args


def build_config(args) -> Config:
    for what, path in (("config", args.config), ("checkpoint", args.checkpoint)):
        if not osp.isfile(path):
            raise SystemExit(f"error: {what} file not found: {path}")
    if args.out is not None and not args.out.endswith((".pkl", ".pickle")):
        raise SystemExit("error: --out must be a .pkl or .pickle file")
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir:
        cfg.work_dir = args.work_dir
    elif cfg.get("work_dir") is None:
        cfg.work_dir = osp.join("./work_dirs", osp.splitext(osp.basename(args.config))[0])
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
