"""Random streams that a piece of work must leave as it found them."""
from __future__ import annotations

import contextlib
import random
from typing import Iterator


@contextlib.contextmanager
def preserved_random_state() -> Iterator[None]:
    """Restore Python's, NumPy's global and torch's (CPU and every CUDA device) random states on
    exit, whatever the block drew: work that runs only when a cache is cold (feature extraction,
    encoder pretraining) must not decide what a training that follows it draws."""
    import numpy as np  # here, not above: visionattn.utils is imported by commands that never load torch
    import torch

    python_state, numpy_state = random.getstate(), np.random.get_state()
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    try:
        with torch.random.fork_rng(devices=devices):
            yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)
