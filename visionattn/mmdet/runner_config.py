"""What ``tools/train_det.py`` and ``tools/test_det.py`` share: their common flags and the config
they build from them before each adds its own settings."""
from __future__ import annotations

import argparse
import os
import os.path as osp

from mmengine.config import Config, DictAction


def add_runner_arguments(parser: argparse.ArgumentParser, work_dir_help: str, cfg_options_help: str) -> None:
    """``--work-dir``, ``--cfg-options``, ``--launcher`` and ``--local_rank``, as mmdet's tools have them."""
    parser.add_argument("--work-dir", help=work_dir_help)
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, default=None, help=cfg_options_help)
    parser.add_argument("--launcher", choices=["none", "pytorch", "slurm", "mpi"], default="none",
                        help="job launcher")
    parser.add_argument("--local_rank", "--local-rank", type=int, default=0)


def announce_local_rank(args: argparse.Namespace) -> None:
    if args.launcher != "none":
        # torch.distributed.launch passes --local_rank; a single-process run must not announce a
        # rank, which every process it starts (a Lightning DDP launcher, say) would inherit.
        os.environ.setdefault("LOCAL_RANK", str(args.local_rank))


def load_config(args: argparse.Namespace) -> Config:
    """``args.config`` with the launcher, ``--cfg-options`` and the work dir applied
    (default ``./work_dirs/<config name>``)."""
    if not osp.isfile(args.config):
        raise SystemExit(f"error: config file not found: {args.config}")
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir:
        cfg.work_dir = args.work_dir
    elif cfg.get("work_dir") is None:
        cfg.work_dir = osp.join("./work_dirs", osp.splitext(osp.basename(args.config))[0])
    return cfg
