import os

import pytest
import torch

# Tests are CPU-only and must give the same results on any machine.
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
