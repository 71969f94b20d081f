"""Sliced Wasserstein distance between image sets, as Karras et al. 2018 (Progressive GAN, appendix D) define it
and DR-GAN reports it (×10³), following their reference code (progressive_growing_of_gans,
metrics/sliced_wasserstein.py).

Per Laplacian-pyramid level (full resolution down to 16 px; cv2's pyrDown/pyrUp, the 5-tap [1, 4, 6, 4, 1]/16
Gaussian with reflect-101 borders, as the reference): 128 random 7×7 neighbourhoods from every image, each a 147-d
descriptor; descriptors normalised per colour channel (mean and std over the set's descriptors of that level); then
the 1-D Wasserstein distance of their projections on random unit directions (sorted projections, mean absolute
difference), averaged over 4 repeats of 128 directions. Each set's neighbourhood positions are drawn independently, as
in the reference, so a set compared with itself gives the sampling-noise level, not 0.

Random draws, from one ``numpy.random.default_rng(seed)`` in this order: set A's positions (per level, finest first:
x then y), set B's, then per level the directions of each repeat.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from retina.common.errors import RetinaError

CV2_MAX_CHANNELS = 512


@dataclass
class SWDConfig:
    # Karras et al. 2018, appendix D and their code: 7x7 neighbourhoods, 128 per image, 4 repeats of 128 directions,
    # pyramid from the full resolution down to 16x16.
    neighbourhood: int = 7
    neighbourhoods_per_image: int = 128
    direction_repeats: int = 4
    directions_per_repeat: int = 128
    min_resolution: int = 16
    seed: int = 0


def pyramid_resolutions(size: int, min_resolution: int = 16) -> list[int]:
    """The reference's levels: the side, halved while it stays at least ``min_resolution``."""
    resolutions = []
    while size >= min_resolution:
        resolutions.append(size)
        size //= 2
    return resolutions


def _filter_batch(function: Callable[[np.ndarray], np.ndarray], images: np.ndarray) -> np.ndarray:
    """Apply a cv2 filter to every channel of ``(N, C, H, W)``, stacking channels last (cv2 takes up to 512)."""
    n, c = images.shape[:2]
    step = max(1, CV2_MAX_CHANNELS // c)
    outputs = []
    for start in range(0, n, step):
        chunk = images[start : start + step]
        stack = np.ascontiguousarray(chunk.reshape(-1, *chunk.shape[2:]).transpose(1, 2, 0))
        out = function(stack)
        out = out.reshape(out.shape[0], out.shape[1], -1)  # cv2 drops a single channel's axis
        outputs.append(out.transpose(2, 0, 1).reshape(len(chunk), c, *out.shape[:2]))
    return np.concatenate(outputs)


def laplacian_pyramid(images: np.ndarray, levels: int) -> list[np.ndarray]:
    """``levels`` float32 ``(N, C, H, W)`` levels, finest first; the last is the coarsest Gaussian level (the
    reference's ``generate_laplacian_pyramid``)."""
    pyramid = [np.float32(images)]
    for _ in range(1, levels):
        finer = pyramid[-1]
        coarser = _filter_batch(cv2.pyrDown, finer)
        size = (finer.shape[3], finer.shape[2])
        pyramid[-1] = finer - _filter_batch(lambda stack, size=size: cv2.pyrUp(stack, dstsize=size), coarser)
        pyramid.append(coarser)
    return pyramid


def _descriptors(level: np.ndarray, count: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` ``size×size`` neighbourhoods of ``(N, C, H, W)``, spread evenly over the images (``count / N`` each:
    128 when both sets have the same size, as the reference) at random positions; normalised per channel."""
    n, _, height, width = level.shape
    half = size // 2
    if min(height, width) < size:
        raise RetinaError(f"SWD: a {height}x{width} pyramid level is smaller than the {size}x{size} neighbourhood")
    image = np.arange(count) * n // count
    x = rng.integers(half, width - half, count)
    y = rng.integers(half, height - half, count)
    offsets = np.arange(-half, half + 1)
    rows = (y[:, None] + offsets)[:, :, None]  # (count, size, 1)
    cols = (x[:, None] + offsets)[:, None, :]  # (count, 1, size)
    patches = level[image[:, None, None], :, rows, cols].transpose(0, 3, 1, 2)  # (count, C, size, size)
    patches = patches - patches.mean(axis=(0, 2, 3), keepdims=True)
    patches = patches / np.maximum(patches.std(axis=(0, 2, 3), keepdims=True), 1e-8)
    return patches.reshape(count, -1)


def sliced_wasserstein(a: np.ndarray, b: np.ndarray, repeats: int, directions: int, rng: np.random.Generator) -> float:
    """Mean 1-D Wasserstein distance of two equal-size descriptor sets ``(M, D)`` along random unit directions: the
    sorted projections are matched, so it is a distance between distributions, blind to the order of the rows."""
    results = []
    for _ in range(repeats):
        unit = rng.standard_normal((a.shape[1], directions))
        unit = (unit / np.sqrt(np.sum(unit**2, axis=0, keepdims=True))).astype(np.float32)
        projected_a = np.sort(a @ unit, axis=0)
        projected_b = np.sort(b @ unit, axis=0)
        results.append(float(np.mean(np.abs(projected_a - projected_b))))
    return float(np.mean(results))


def sliced_wasserstein_distance(
    images_a: torch.Tensor | np.ndarray, images_b: torch.Tensor | np.ndarray, config: SWDConfig | None = None
) -> dict[str, float]:
    """SWD ×10³ per pyramid level (``"SWD-<res>px"``, finest first) and their mean (``"SWD"``).

    ``images_*``: float ``(N, 3, S, S)`` in any fixed range (descriptors are normalised). Sets of different sizes
    contribute the same number of neighbourhoods (128 per image of the smaller set)."""
    config = config or SWDConfig()
    images_a, images_b = (np.asarray(i.detach().cpu() if isinstance(i, torch.Tensor) else i, dtype=np.float32)
                          for i in (images_a, images_b))
    if images_a.ndim != 4 or images_a.shape[1:] != images_b.shape[1:]:
        raise RetinaError(f"SWD: image sets must be (N, C, H, W) of one shape, got {tuple(images_a.shape)} and "
                          f"{tuple(images_b.shape)}")
    size = min(images_a.shape[-2:])
    if size < config.min_resolution:
        raise RetinaError(f"SWD needs images of at least {config.min_resolution} px, got {size}")
    resolutions = pyramid_resolutions(size, config.min_resolution)
    count = min(len(images_a), len(images_b)) * config.neighbourhoods_per_image
    rng = np.random.default_rng(config.seed)
    descriptors = [
        [_descriptors(level, count, config.neighbourhood, rng) for level in laplacian_pyramid(images, len(resolutions))]
        for images in (images_a, images_b)
    ]
    result: dict[str, float] = {}
    for resolution, a, b in zip(resolutions, *descriptors, strict=True):
        distance = sliced_wasserstein(a, b, config.direction_repeats, config.directions_per_repeat, rng)
        result[f"SWD-{resolution}px"] = distance * 1e3
    result["SWD"] = float(np.mean(list(result.values())))
    return result
