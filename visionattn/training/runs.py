"""One training run in a folder of its own: fit, then test the best checkpoint.

``visionattn loso`` (one run per fold), the FEDN accuracy benchmark (one per ablation) and
``visionattn demo`` all train this way, with the same YAML that ``visionattn train`` reads.
A run folder has fixed paths (no ``version_N``), so an interrupted run finds its
``checkpoints/last.ckpt`` and resumes at the same epoch with the same optimizer state, and a
finished one leaves ``predictions_test.csv``.
"""
from __future__ import annotations

from pathlib import Path
from typing import List


def run_overrides(run_dir: Path) -> List[str]:
    """LightningCLI arguments that put checkpoints, logs and predictions under ``run_dir`` (the
    default callbacks and loggers of :mod:`.cli` follow ``trainer.default_root_dir``)."""
    return [f"--trainer.default_root_dir={run_dir}", f"--model.predictions_dir={run_dir}"]


def fit_and_test(config: List[str], run_dir: Path, extra: List[str]) -> Path:
    """Train with the YAML files ``config`` plus ``extra`` overrides in ``run_dir``, resuming from
    its ``last.ckpt``; test the best checkpoint (chosen on validation subjects) on the test
    subjects. Returns that checkpoint."""
    from .cli import fedn_cli

    cli = fedn_cli(run_overrides(run_dir) + list(extra), run=False, configs=config, fixed_layout=True)
    last = run_dir / "checkpoints" / "last.ckpt"
    cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=str(last) if last.is_file() else None)
    best = Path(cli.trainer.checkpoint_callback.best_model_path or last)
    cli.trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path=str(best))
    return best
