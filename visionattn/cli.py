"""The ``visionattn`` command: one subcommand per job.

A subcommand module provides ``add_arguments(parser)`` and ``run(args)``. User mistakes
raise :class:`visionattn.utils.UserError` and are printed as one line, without a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import List, Optional

from .utils import UserError
from .utils.console import quiet_library_chatter

# name -> (module, help). Modules are imported only when their subcommand runs, so
# `visionattn --help` stays fast and optional dependencies stay optional.
SUBCOMMANDS = {
    "detect": ("visionattn.inference.command",
               "find facial expressions in videos with a trained FEDN: JSON, MEGC CSV, timeline picture"),
    "demo": ("visionattn.demo",
             "end to end: synthesize data, train FEDN, detect on held-out videos, score them"),
    "benchmark": ("visionattn.benchmarks.mca_speed",
                  "time ResNet-50 with SE / ECA / MCA-E / MCA-S / naive MCA-S side by side"),
    "benchmark-fedn-scaling": ("visionattn.benchmarks.fedn_scaling",
                               "FEDN temporal part, T = 512..16384: time and peak memory, window vs full attention"),
    "benchmark-fedn": ("visionattn.benchmarks.fedn_accuracy",
                       "FEDN spotting/recognition on held-out synthetic subjects, with the ablation rows"),
    "benchmark-detect": ("visionattn.benchmarks.detect_speed",
                         "frames per second of each `visionattn detect` stage on a 640x480 30 fps video"),
    "benchmark-real": ("visionattn.benchmarks.real_clips",
                       "each `visionattn detect` method on real clips against their by-eye annotation"),
    "evaluate": ("visionattn.evaluation.command",
                 "score predicted expression intervals against ground truth (MEGC spotting, STRS, mAP)"),
    "train": ("visionattn.training.command",
              "train / test FEDN expression spotting with Lightning (LightningCLI: fit, validate, test)"),
    "features": ("visionattn.training.features_command",
                 "extract a FEDN config's per-frame features ahead of training (torchrun / SLURM: videos split)"),
    "loso": ("visionattn.training.loso",
             "train every leave-one-subject-out fold of a FEDN config and score the pooled predictions"),
    "annotations": ("visionattn.data.annotations_command",
                    "convert an official annotation workbook (CAS(ME)^2, SAMM-LV, CAS(ME)^3) to a ground-truth CSV"),
    "synth": ("visionattn.data.synthetic",
              "write a synthetic CAS(ME)^2-layout expression dataset (animated real face photo)"),
    "train-cls": ("visionattn.classification.command",
                  "train timm image classifiers (ours or timm's) with Lightning: fit / validate / test"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="visionattn", description="Attention modules for vision: MCA and FEDN.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        # Pass-through subcommands never reach this parser (see main); listed for --help only.
        if not _passthrough(name):
            importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in SUBCOMMANDS and _passthrough(argv[0]):
        # Hand everything, --help included, to the subcommand's own parser (LightningCLI).
        args = argparse.Namespace(command=argv[0], _module=SUBCOMMANDS[argv[0]][0], argv=argv[1:])
    else:
        args = build_parser().parse_args(argv)
    quiet_library_chatter()
    try:
        importlib.import_module(args._module).run(args)
    except UserError as err:
        print(f"visionattn {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"visionattn {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


def _passthrough(name: str) -> bool:
    """A subcommand that hands its arguments to another parser (LightningCLI) sets
    ``PASS_THROUGH = True`` and gets them untouched, --help included, in ``args.argv``."""
    return bool(getattr(importlib.import_module(SUBCOMMANDS[name][0]), "PASS_THROUGH", False))


if __name__ == "__main__":
    sys.exit(main())
