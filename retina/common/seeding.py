"""Seeds: one base seed per run, one derived seed per sample so that any subset or shard reproduces."""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def sample_seed(base_seed: int, index: int) -> int:
    """A per-sample seed that does not depend on batch size or on which shard generates the sample."""
    mixed = np.random.SeedSequence([base_seed, index]).generate_state(1, dtype=np.uint32)[0]
    return int(mixed)


def torch_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    return generator
