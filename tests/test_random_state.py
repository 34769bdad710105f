"""Work that runs only when a cache is cold leaves the random streams as it found them."""
import random

import numpy as np
import torch

from visionattn.training.datamodule import ExpressionDataModule
from visionattn.utils import preserved_random_state


def _draws():
    return random.random(), float(np.random.rand()), float(torch.rand(()))


def test_preserved_random_state_restores_every_stream():
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    expected = _draws()
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    with preserved_random_state():
        _draws(), torch.randn(1000), np.random.rand(1000)  # anything at all
    assert _draws() == expected


def test_prepare_data_leaves_the_training_draws_alone(monkeypatch, tmp_path):
    # Extraction and pretraining draw (a network's random initialisation before its weights are
    # loaded, training batches): a run whose cache was cold must then draw as a warm one does.
    monkeypatch.setattr(ExpressionDataModule, "prepare_features", lambda self, *a, **k: torch.randn(10_000))
    dm = ExpressionDataModule(str(tmp_path), cache_root=str(tmp_path / "cache"))
    torch.manual_seed(0)
    warm = torch.rand(5)
    torch.manual_seed(0)
    dm.prepare_data()
    assert torch.equal(torch.rand(5), warm)
