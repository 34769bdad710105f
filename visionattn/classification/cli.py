"""The one LightningCLI of ``visionattn train-cls``, and the rule that names a run after its model.

A recipe holds many models (``configs/classification/base_imagenet.yaml`` and one small
``imagenet_<model>.yaml`` per model), so the run's names are written once, in the recipe, and
completed from ``model.model_name`` here (:func:`fill_run_names`):

- the logger's ``name``: ``{model_name}`` in it becomes ``model.model_name``
  (``imagenet_{model_name}`` -> ``imagenet_resnet50_mca_s``);
- a ModelCheckpoint whose ``dirpath`` is null gets ``<logger save_dir>/<logger name>/checkpoints``:
  fixed per run name, not inside the logger's per-run ``version_N``, so ``--ckpt_path last``
  finds the previous run's ``last.ckpt``.

A name without ``{model_name}`` and a ``dirpath`` that is set are kept as given. Names are filled
before the classes are built, and in every dump, so ``--print_config`` and the ``config.yaml``
saved beside the logs show them.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Optional, Sequence

from jsonargparse import Namespace
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from ..utils.console import quiet_library_chatter

__all__ = ["MODEL_NAME_FIELD", "ClassificationCLI", "classification_cli", "fill_run_names"]

MODEL_NAME_FIELD = "{model_name}"


def _entries(value: Any) -> list:
    """A class_path/init_args Namespace, or a list of them, as a list of Namespaces."""
    items = value if isinstance(value, list) else [value]
    return [item for item in items if isinstance(item, Namespace) and isinstance(item.get("init_args"), Namespace)]


def _is_model_checkpoint(class_path: Any) -> bool:
    if not isinstance(class_path, str) or "." not in class_path:
        return False
    module_name, _, name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError):
        return False  # the parser reports a wrong class_path in its own words
    return isinstance(cls, type) and issubclass(cls, ModelCheckpoint)


def fill_run_names(cfg: Namespace) -> Namespace:
    """Complete the logger name and checkpoint folder of ``cfg`` from ``model.model_name``, in place.

    ``cfg`` is a parsed train-cls config: a subcommand's (with ``trainer`` and ``model``) or the
    whole command's (with ``subcommand`` and ``fit``/``validate``/...). Anything missing or
    disabled (no model name, ``trainer.logger: false``) is left as it is; the parser reports
    real errors itself. Returns ``cfg``.
    """
    if isinstance(cfg.get("subcommand"), str) and isinstance(cfg.get(cfg.subcommand), Namespace):
        fill_run_names(cfg[cfg.subcommand])
        return cfg
    trainer = cfg.get("trainer")
    model_name = cfg.get("model.model_name") if isinstance(cfg.get("model"), Namespace) else None
    if not isinstance(trainer, Namespace):
        return cfg
    loggers = _entries(trainer.get("logger"))
    for logger in loggers:
        name = logger.init_args.get("name")
        if isinstance(name, str) and MODEL_NAME_FIELD in name and isinstance(model_name, str):
            logger.init_args.name = name.replace(MODEL_NAME_FIELD, model_name)
    # Lightning's checkpoint folder follows the first logger too.
    first = loggers[0].init_args if loggers else None
    if first is None or not first.get("save_dir") or not isinstance(first.get("name"), str):
        return cfg
    if MODEL_NAME_FIELD in first.name:
        return cfg  # no model name to fill in: a folder named "{model_name}" would be wrong
    dirpath = str(Path(first.save_dir) / first.name / "checkpoints")
    for callback in _entries(trainer.get("callbacks")):
        if "dirpath" in callback.init_args and callback.init_args.dirpath is None \
                and _is_model_checkpoint(callback.get("class_path")):
            callback.init_args.dirpath = dirpath
    return cfg


class _Parser(LightningArgumentParser):
    """Dumps with the run names filled: ``--print_config`` prints before any hook of the CLI runs."""

    def dump(self, cfg: Namespace, *args: Any, **kwargs: Any) -> str:
        return super().dump(fill_run_names(cfg.clone()), *args, **kwargs)


class ClassificationCLI(LightningCLI):
    """LightningCLI whose logger name and checkpoint folder follow ``model.model_name``
    (:func:`fill_run_names`)."""

    def before_instantiate_classes(self) -> None:
        fill_run_names(self.config)


def classification_cli(args: Sequence[str], run: bool = True,
                       parser_kwargs: Optional[dict] = None) -> ClassificationCLI:
    """The train-cls LightningCLI on ``args`` (everything after ``visionattn train-cls``);
    ``run=False`` only parses and builds the model, datamodule and trainer (then ``args`` has no
    subcommand)."""
    from .datamodule import ImageFolderDataModule
    from .module import ImageClassifier

    quiet_library_chatter()
    return ClassificationCLI(
        ImageClassifier,
        ImageFolderDataModule,
        args=list(args),
        run=run,
        parser_class=_Parser,
        parser_kwargs={"prog": "visionattn train-cls", **(parser_kwargs or {})},
        # A resumed run writes its config.yaml into the same log folder again.
        save_config_kwargs={"overwrite": True},
    )
