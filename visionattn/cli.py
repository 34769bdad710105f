"""The ``visionattn`` command (also ``python -m visionattn``): one subcommand per job.

A subcommand module provides ``add_arguments(parser)`` and ``run(args)``; only the module of the
subcommand being run is imported, so ``visionattn --help`` and the table commands (evaluate,
annotations) never load torch. User mistakes raise :class:`visionattn.utils.UserError` and are
printed as one line, without a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from dataclasses import dataclass
from typing import List, Optional

from . import __version__
from .utils import UserError


@dataclass(frozen=True)
class Subcommand:
    """Where a subcommand lives and how ``--help`` presents it. ``passthrough``: the module hands
    its arguments, --help included, to another parser (LightningCLI) and gets them untouched in
    ``args.argv``."""

    module: str
    help: str
    example: str
    passthrough: bool = False


SUBCOMMANDS = {
    "detect": Subcommand(
        "visionattn.inference.command",
        "find facial expressions in videos (training-free appearance spotter, or a trained FEDN): JSON, CSV, report",
        "visionattn detect my_video.mp4 --out outputs/detect"),
    "demo": Subcommand(
        "visionattn.demo",
        "end to end: synthesize data, train FEDN, detect on held-out videos, score them",
        "visionattn demo --out outputs/demo"),
    "benchmark": Subcommand(
        "visionattn.benchmarks.mca_speed",
        "time ResNet-50 with SE / ECA / MCA-E / MCA-S / naive MCA-S side by side",
        "visionattn benchmark --batch-sizes 1 8 --out outputs/benchmark"),
    "benchmark-fedn-scaling": Subcommand(
        "visionattn.benchmarks.fedn_scaling",
        "FEDN temporal part, T = 512..16384: time and peak memory, window vs full attention",
        "visionattn benchmark-fedn-scaling --lengths 512 2048 8192 --out outputs/benchmark"),
    "benchmark-fedn": Subcommand(
        "visionattn.benchmarks.fedn_accuracy",
        "FEDN spotting/recognition on held-out synthetic subjects, with the ablation rows",
        "visionattn benchmark-fedn --out outputs/benchmark/fedn_accuracy"),
    "benchmark-detect": Subcommand(
        "visionattn.benchmarks.detect_speed",
        "frames per second of each `visionattn detect` stage on a 640x480 30 fps video",
        "visionattn benchmark-detect --seconds 30 --out outputs/benchmark/detect"),
    "benchmark-real": Subcommand(
        "visionattn.benchmarks.real_clips",
        "each `visionattn detect` method on real clips against their by-eye annotation",
        "visionattn benchmark-real --out outputs/benchmark/real"),
    "evaluate": Subcommand(
        "visionattn.evaluation.command",
        "score predicted expression intervals against ground truth (MEGC spotting, STRS, mAP)",
        "visionattn evaluate --gt my_gt.csv --pred outputs/detect/my_video.csv"),
    "train": Subcommand(
        "visionattn.training.command",
        "train / test FEDN expression spotting with Lightning (LightningCLI: fit, validate, test)",
        "visionattn train fit --config configs/fedn/base.yaml --config configs/fedn/casme2.yaml",
        passthrough=True),
    "features": Subcommand(
        "visionattn.training.features_command",
        "extract a FEDN config's per-frame features ahead of training (torchrun / SLURM: videos split)",
        "visionattn features --config configs/fedn/base.yaml --config configs/fedn/casme2.yaml"),
    "loso": Subcommand(
        "visionattn.training.loso",
        "train every leave-one-subject-out fold of a FEDN config and score the pooled predictions",
        "visionattn loso --config configs/fedn/base.yaml --config configs/fedn/samm.yaml --out outputs/loso/samm"),
    "annotations": Subcommand(
        "visionattn.data.annotations_command",
        "convert an official annotation workbook (CAS(ME)^2, SAMM-LV, CAS(ME)^3) to a ground-truth CSV",
        'visionattn annotations "CAS(ME)^2code_final.xlsx" --dataset casme2 --out casme2_gt.csv'),
    "synth": Subcommand(
        "visionattn.data.synthetic",
        "write a synthetic CAS(ME)^2-layout expression dataset (animated real face photo)",
        "visionattn synth --out outputs/synth --subjects 6 --videos-per-subject 2"),
    "train-cls": Subcommand(
        "visionattn.classification.command",
        "train timm image classifiers (ours or timm's) with Lightning: fit / validate / test",
        "visionattn train-cls fit --config configs/classification/digits_resnet_tiny.yaml",
        passthrough=True),
}


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Each option's help ends with its default, unless it has none (None, False) or the help
    already states it; descriptions and examples keep their line breaks."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (action.default in (None, False, argparse.SUPPRESS) or "default" in text.lower()
                or not (action.option_strings or action.nargs in ("?", "*"))):
            return text
        return f"{text} (default: %(default)s)" if text else "default: %(default)s"


def build_parser(command: Optional[str] = None) -> argparse.ArgumentParser:
    """The ``visionattn`` parser. Every subcommand is listed, but only ``command``'s module is
    imported to add its arguments (none for ``None``, which is enough for ``--help``)."""
    parser = argparse.ArgumentParser(
        prog="visionattn", description="Attention modules for vision: MCA and FEDN.",
        epilog="Example:\n  visionattn detect my_video.mp4 --out outputs/detect\n"
               "`visionattn COMMAND --help` shows a command's options and an example.",
        formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, spec in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=spec.help, description=spec.help, formatter_class=HelpFormatter,
                           epilog=f"Example:\n  {spec.example}")
        p.set_defaults(_module=spec.module)
        # Pass-through subcommands never reach this parser (see main); listed for --help only.
        if name == command and not spec.passthrough:
            importlib.import_module(spec.module).add_arguments(p)
    return parser


def subcommand_parser(command: str) -> argparse.ArgumentParser:
    """The parser of one (not pass-through) subcommand, with its arguments."""
    parser = build_parser(command)
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return subparsers.choices[command]


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = argv[0] if argv and argv[0] in SUBCOMMANDS else None
    if command is not None and SUBCOMMANDS[command].passthrough:
        # Hand everything, --help included, to the subcommand's own parser (LightningCLI).
        args = argparse.Namespace(command=command, _module=SUBCOMMANDS[command].module, argv=argv[1:])
    else:
        args = build_parser(command).parse_args(argv)
    from .utils.console import quiet_library_chatter

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


if __name__ == "__main__":
    sys.exit(main())
