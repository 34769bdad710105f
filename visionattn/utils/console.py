"""A quiet console: our dependencies' messages that a user cannot act on are silenced here, and
only here, each by its exact text, so that warnings about the user's data or settings still show.
"""
from __future__ import annotations

import logging
import os
import sys
import warnings

# Lightning's hardware summary, advertisements and notes on its own bookkeeping (logged at INFO
# on every run; the seed is in the config the user wrote).
_LIGHTNING_INFO_NOISE = (
    "💡 Tip:",
    "GPU available:",
    "TPU available:",
    "HPU available:",
    "IPU available:",
    "Seed set to",
    "Loading `train_dataloader` to estimate number of stepping batches",
    "Restoring states from the checkpoint path",
    "Loaded model weights from the checkpoint",
)

# Warnings raised by our dependencies' own internals, or by how visionattn drives them, never by
# the user's input (message prefixes; matched by `warnings` as regular expressions).
_DEPENDENCY_WARNINGS = (
    # visionattn always passes LightningCLI its arguments explicitly; sys.argv is the visionattn
    # command line, not LightningCLI's.
    r"LightningCLI's args parameter is intended",
    # Lightning's own use of torch's pytree API (lightning/pytorch/utilities/_pytree.py).
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",
)


def counted(n: int, noun: str) -> str:
    """``n`` and the noun in the form ``n`` takes: ``counted(1, "shot cut")`` is "1 shot cut",
    ``counted(3, "row")`` "3 rows" (nouns that take an s)."""
    return f"{n} {noun if n == 1 else noun + 's'}"


def progress_wanted(requested: bool = True) -> bool:
    """Progress bars only where someone watches them: on a terminal. In a file or a CI log their
    carriage-return updates are thousands of lines; the commands print a line per item instead."""
    return requested and sys.stderr.isatty()


def warn(message: str) -> None:
    """A warning about the user's data or settings, as one line on stderr."""
    print(f"warning: {message}", file=sys.stderr)


def _one_line(message, category, filename, lineno, line=None) -> str:
    """``warnings``' format without the source file, line number and code line (ours, useless
    to a user): one line per warning."""
    return f"warning: {message}\n"


class _DropPrefixes(logging.Filter):
    def __init__(self, prefixes):
        super().__init__()
        self.prefixes = tuple(prefixes)

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.getMessage())
        return not any(p in message[:len(p) + 12] for p in self.prefixes)  # room for a "[rank: n] " prefix


_installed = False


def quiet_library_chatter() -> None:
    """Install the filters, and warnings as one line; safe to call again (pytest resets warning
    filters between tests)."""
    global _installed
    warnings.formatwarning = _one_line
    for message in _DEPENDENCY_WARNINGS:
        warnings.filterwarnings("ignore", message=message)  # an identical filter replaces the old one
    # Lightning calls jsonargparse APIs that jsonargparse deprecates: nothing a user can change.
    # jsonargparse reads this switch at each warning; a user who sets it keeps their choice.
    os.environ.setdefault("JSONARGPARSE_DEPRECATION_WARNINGS", "off")
    if _installed:
        return
    _installed = True
    drop = _DropPrefixes(_LIGHTNING_INFO_NOISE)
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero",
                 "lightning.fabric.utilities.seed"):
        logging.getLogger(name).addFilter(drop)
