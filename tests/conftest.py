"""Test-wide settings: wandb off unless a test turns it on, one torch thread, repo root importable."""
import os
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ["WANDB_MODE"] = "disabled"
os.environ["WANDB_SILENT"] = "true"
os.environ.pop("WANDB_API_KEY", None)
torch.set_num_threads(1)


@pytest.fixture
def repo_root() -> Path:
    return ROOT
