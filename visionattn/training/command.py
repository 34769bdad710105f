"""``visionattn train``: LightningCLI for FEDN spotting, every choice in the YAML.

    visionattn train fit  --config configs/fedn/synthetic.yaml
    visionattn train test --config configs/fedn/synthetic.yaml --ckpt_path best
    visionattn train fit  --config configs/fedn/casme2.yaml --data.fold 3   # one LOSO fold

Everything after ``train`` goes to LightningCLI untouched (``--help`` too); this command
adds nothing of its own. Multi-GPU / multi-node: ``--trainer.devices 4 --trainer.strategy ddp``
(and ``--trainer.num_nodes N`` under torchrun or SLURM).
"""
from __future__ import annotations

import argparse

# visionattn.cli hands the arguments after "train" to LightningCLI untouched (Subcommand.passthrough).


def run(args: argparse.Namespace) -> None:
    from .cli import fedn_cli

    fedn_cli(args.argv or ["--help"])
