"""Sliced Wasserstein distance between image sets, as Karras et al. 2018 (Progressive GAN, appendix D) define it
and DR-GAN reports it (×10³).

Per Laplacian-pyramid level (full resolution down to 16 px): 7×7 neighbourhoods at random positions, each a
147-d descriptor; descriptors normalised per colour channel (mean and std over the set, per level); then the 1-D
Wasserstein distance of their projections on random unit directions, averaged over directions and repeats.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from kornia.geometry.transform import build_laplacian_pyramid

from retina.common.errors import RetinaError


@dataclass
class SWDConfig:
    # Karras et al. 2018, appendix D: 7x7 neighbourhoods, 128 per image, 4 repeats of 128 directions (512 in all),
    # pyramid from the full resolution down to 16x16.
    neighbourhood: int = 7
    neighbourhoods_per_image: int = 128
    direction_repeats: int = 4
    directions_per_repeat: int = 128
    min_resolution: int = 16
    seed: int = 0


def _pyramid(images: torch.Tensor, min_resolution: int) -> list[torch.Tensor]:
    levels = max(1, int(torch.log2(torch.tensor(images.shape[-1] / min_resolution)).floor().item()) + 1)
    # kornia returns the Laplacian levels fine to coarse; its last level is the coarsest Gaussian, as in Karras et al.
    return build_laplacian_pyramid(images, max_level=levels)


def _descriptors(level: torch.Tensor, count: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` random ``size×size`` neighbourhoods from a level ``(N, 3, H, W)``, normalised per channel."""
    n, channels, height, width = level.shape
    half = size // 2
    if min(height, width) < size:
        raise RetinaError(f"SWD: a {height}x{width} pyramid level is smaller than the {size}x{size} neighbourhood")
    image = torch.randint(0, n, (count,), generator=generator)
    y = torch.randint(half, height - half, (count,), generator=generator)
    x = torch.randint(half, width - half, (count,), generator=generator)
    offsets = torch.arange(-half, half + 1)
    rows = (y[:, None] + offsets[None, :])[:, :, None].expand(count, size, size)
    cols = (x[:, None] + offsets[None, :])[:, None, :].expand(count, size, size)
    patches = level[image[:, None, None], :, rows, cols]  # (count, size, size, channels)
    patches = patches.permute(0, 3, 1, 2)
    patches = patches - patches.mean(dim=(0, 2, 3), keepdim=True)
    patches = patches / patches.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-8)
    return patches.reshape(count, -1)


def _sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, config: SWDConfig, generator: torch.Generator) -> float:
    results = []
    for _ in range(config.direction_repeats):
        directions = torch.randn(a.shape[1], config.directions_per_repeat, generator=generator, dtype=a.dtype)
        directions = directions / directions.norm(dim=0, keepdim=True)
        projected_a = torch.sort(a @ directions, dim=0).values
        projected_b = torch.sort(b @ directions, dim=0).values
        results.append((projected_a - projected_b).abs().mean().item())
    return sum(results) / len(results)


def sliced_wasserstein_distance(
    images_a: torch.Tensor, images_b: torch.Tensor, config: SWDConfig | None = None
) -> dict[str, float]:
    """SWD ×10³ per pyramid level (``"SWD-<res>px"``, finest first) and their mean (``"SWD"``).

    ``images_*``: float ``(N, 3, S, S)`` in any fixed range (descriptors are normalised). Both sets use the same
    seeded neighbourhood positions and directions, so identical sets give exactly 0."""
    config = config or SWDConfig()
    if images_a.shape[1:] != images_b.shape[1:]:
        raise RetinaError(f"SWD: image sets differ in shape {tuple(images_a.shape[1:])} vs {tuple(images_b.shape[1:])}")
    if images_a.shape[-1] < config.min_resolution:
        raise RetinaError(f"SWD needs images of at least {config.min_resolution} px, got {images_a.shape[-1]}")
    count = min(len(images_a), len(images_b)) * config.neighbourhoods_per_image
    pyramid_a = _pyramid(images_a.float(), config.min_resolution)
    pyramid_b = _pyramid(images_b.float(), config.min_resolution)
    result: dict[str, float] = {}
    for level, (level_a, level_b) in enumerate(zip(pyramid_a, pyramid_b, strict=True)):
        seed = config.seed * 1000 + level
        descriptors_a = _descriptors(level_a, count, config.neighbourhood, torch.Generator().manual_seed(seed))
        descriptors_b = _descriptors(level_b, count, config.neighbourhood, torch.Generator().manual_seed(seed))
        distance = _sliced_wasserstein(descriptors_a, descriptors_b, config, torch.Generator().manual_seed(seed + 7))
        result[f"SWD-{level_a.shape[-1]}px"] = distance * 1e3
    result["SWD"] = sum(result.values()) / len(result)
    return result
