"""Shared test fixtures. Everything is CPU-sized: 32-64 px, widths of 8-16, a few steps."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("RETINA_WEIGHTS_DIR", "/nonexistent-retina-weights")
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield
