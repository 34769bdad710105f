"""The one LightningCLI of FEDN spotting, and the trainer's default callbacks and loggers.

Every entry point (``visionattn train``, ``visionattn loso``, the accuracy benchmark, the demo)
builds its CLI with :func:`fedn_cli`, so they parse the same YAML the same way. When a config
names no callbacks or loggers, a run gets the defaults below, all under
``trainer.default_root_dir`` at fixed paths (no ``version_N``): an interrupted run finds its
``checkpoints/last.ckpt`` again.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional, Sequence

from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.callbacks.progress import ProgressBar as BaseProgressBar
from lightning.pytorch.cli import LightningCLI

from ..utils.console import progress_wanted, quiet_library_chatter

CHECKPOINT_MONITOR = "val/f1"


class ProgressBar(TQDMProgressBar):
    """tqdm's bar without the logger's version number (our runs use fixed folder names)."""

    def get_metrics(self, trainer, pl_module):
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        return metrics


def default_callbacks(root: Path, progress_bar: bool = True) -> list:
    """Progress bar (tqdm, also where ``rich`` is installed) and the best / last checkpoints."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    bar = [ProgressBar()] if progress_bar else []
    return bar + [ModelCheckpoint(dirpath=str(root / "checkpoints"), monitor=CHECKPOINT_MONITOR, mode="max",
                                  save_last=True)]


def default_loggers(root: Path) -> list:
    """CSV metrics and TensorBoard events in ``root/csv`` and ``root/tensorboard``."""
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    return [CSVLogger(save_dir=str(root), name="", version="csv"),
            TensorBoardLogger(save_dir=str(root), name="", version="tensorboard")]


class FEDNCLI(LightningCLI):
    """LightningCLI whose trainer gets :func:`default_callbacks` / :func:`default_loggers` when the
    config gives none (``trainer.logger: false`` still turns logging off). With
    ``fixed_layout=True`` (a run folder of :mod:`.runs`) it always gets them, whatever the config
    says, because resuming and pooling rely on their fixed paths."""

    def __init__(self, *args: Any, fixed_layout: bool = False, trainer: bool = True, **kwargs: Any):
        self.fixed_layout, self.with_trainer = fixed_layout, trainer
        super().__init__(*args, **kwargs)

    def instantiate_trainer(self, **kwargs: Any):
        if not self.with_trainer:
            return None
        config = self._get(self.config_init, "trainer", default={})
        root = Path(config.get("default_root_dir") or "outputs/fedn")
        given = config.get("callbacks") or []
        given = given if isinstance(given, list) else [given]
        if not progress_wanted() and not any(isinstance(c, BaseProgressBar) for c in given):
            kwargs["enable_progress_bar"] = False  # a log file gets no bar (Lightning would add its own)
        bar = config.get("enable_progress_bar") is not False and kwargs.get("enable_progress_bar") is not False
        if self.fixed_layout or not config.get("callbacks"):
            kwargs.setdefault("callbacks", default_callbacks(root, bar))
        if config.get("logger") is not False and (self.fixed_layout or config.get("logger") in (None, True)):
            kwargs.setdefault("logger", default_loggers(root))
        return super().instantiate_trainer(**kwargs)


def fedn_cli(args: Sequence[str], run: bool = True, configs: Optional[Sequence[str]] = None,
             fixed_layout: bool = False, trainer: bool = True, parser_kwargs: Optional[dict] = None) -> FEDNCLI:
    """The FEDN LightningCLI on ``args`` (``--config`` files ``configs`` first); ``run=False`` only
    builds the model, datamodule and trainer; ``fixed_layout``: see :class:`FEDNCLI`;
    ``trainer=False`` builds no trainer (feature extraction under a launcher whose world size need
    not match ``trainer.devices``)."""
    from .datamodule import ExpressionDataModule
    from .module import SpottingModule

    quiet_library_chatter()
    argv: List[str] = [a for c in (configs or ()) for a in ("--config", str(c))] + list(args)
    return FEDNCLI(SpottingModule, ExpressionDataModule, args=argv, run=run, fixed_layout=fixed_layout,
                   trainer=trainer, save_config_kwargs={"overwrite": True}, parser_kwargs=parser_kwargs or {})
