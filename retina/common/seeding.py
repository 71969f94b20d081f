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


def per_sample_randn(
    generators: list[torch.Generator] | None, shape: tuple[int, ...], like: torch.Tensor
) -> torch.Tensor:
    """Gaussian noise ``(B, *shape)`` in ``like``'s device and dtype.

    With one generator per sample, each sample's noise depends only on its own seed, not on its batch: drawn
    in fp32 on the generator's device (a CPU generator may feed a CUDA model), then moved. Without generators,
    the global generator draws the whole batch.
    """
    if generators is None:
        return torch.randn(like.shape[0], *shape, device=like.device, dtype=like.dtype)
    if len(generators) != like.shape[0]:
        raise ValueError(f"{len(generators)} noise generators for a batch of {like.shape[0]}")
    draws = [torch.randn(shape, generator=g, device=g.device, dtype=torch.float32) for g in generators]
    return torch.stack(draws).to(device=like.device, dtype=like.dtype)
