"""MS-SSIM (Wang, Simoncelli & Bovik 2003) and the diversity score SkrGAN reports: the mean MS-SSIM between random
pairs of images of one set (lower = more diverse).

The metric is pytorch-msssim's: Gaussian window 11 px, sigma 1.5, filtered only where it fits inside the image,
K1 = 0.01, K2 = 0.03, per channel then averaged, negative contrast-structure terms set to 0. Five scales need the
window to fit the 1/16 scale, so pytorch-msssim refuses images of 160 px or less. Below that size this module computes
the variant with as many scales as fit (Wang's first weights, renormalised), with pytorch-msssim's own per-scale
terms, and every output names it: ``MS-SSIM-4scale`` at 81-160 px, ``MS-SSIM-3scale`` at 41-80 px, and so on. Such a
value is not comparable with a 5-scale MS-SSIM.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pytorch_msssim import ms_ssim as reference_ms_ssim
from pytorch_msssim.ssim import _fspecial_gauss_1d, _ssim  # internal names of the pinned 1.0.0 (tested)

from retina.common.errors import RetinaError

# Wang et al. 2003, section 3.1: five scales, 11x11 Gaussian window with sigma 1.5.
SCALE_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
WINDOW, SIGMA = 11, 1.5


def scales_for(size: int) -> int:
    """Scales that fit a ``size``-px image: pytorch-msssim's rule, side > (window - 1) * 2^(scales - 1)."""
    scales = 0
    while scales < len(SCALE_WEIGHTS) and size > (WINDOW - 1) * 2**scales:
        scales += 1
    return scales


def variant_name(size: int) -> str:
    """``MS-SSIM`` for the 5-scale metric, ``MS-SSIM-<k>scale`` for the variant that fits smaller images."""
    scales = scales_for(size)
    return "MS-SSIM" if scales == len(SCALE_WEIGHTS) else f"MS-SSIM-{scales}scale"


def ms_ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per-pair MS-SSIM of ``(N, C, H, W)`` images: pytorch-msssim's above 160 px, else the variant
    :func:`variant_name` names."""
    if x.shape != y.shape or x.ndim != 4:
        raise RetinaError(f"MS-SSIM needs two (N, C, H, W) batches of one shape, got {tuple(x.shape)}, "
                          f"{tuple(y.shape)}")
    size = min(x.shape[-2:])
    scales = scales_for(size)
    if scales == 0:
        raise RetinaError(f"MS-SSIM needs images larger than {WINDOW - 1} px (the {WINDOW}-px window), got {size} px; "
                          f"use a larger --res")
    x, y = x.float(), y.float()
    if scales == len(SCALE_WEIGHTS):
        return reference_ms_ssim(x, y, data_range=data_range, size_average=False)
    return fewer_scales(x, y, scales, data_range)


def fewer_scales(x: torch.Tensor, y: torch.Tensor, scales: int, data_range: float = 1.0) -> torch.Tensor:
    """pytorch-msssim's multi-scale product over the first ``scales`` scales (weights renormalised to sum 1), without
    its size assertion: its per-scale terms, 2x2 average pooling and zero floor, in the same order."""
    weights = torch.tensor(SCALE_WEIGHTS[:scales], dtype=x.dtype, device=x.device)
    weights = weights / weights.sum()
    window = _fspecial_gauss_1d(WINDOW, SIGMA).repeat([x.shape[1], 1, 1, 1])
    factors = []
    for scale in range(scales):
        ssim_per_channel, contrast_structure = _ssim(x, y, data_range=data_range, win=window, size_average=False)
        if scale < scales - 1:
            factors.append(torch.relu(contrast_structure))
            padding = [s % 2 for s in x.shape[2:]]
            x, y = F.avg_pool2d(x, kernel_size=2, padding=padding), F.avg_pool2d(y, kernel_size=2, padding=padding)
    factors.append(torch.relu(ssim_per_channel))  # the last scale: luminance x contrast-structure, as Wang et al.
    product = torch.prod(torch.stack(factors) ** weights.view(-1, 1, 1), dim=0)  # (N, C)
    return product.mean(1)


def msssim_diversity(images: torch.Tensor, pairs: int = 100, seed: int = 0, data_range: float = 1.0) -> float:
    """Mean MS-SSIM over ``pairs`` random pairs of distinct images of one set (the variant ``variant_name`` names
    for the images' size)."""
    n = len(images)
    if n < 2:
        raise RetinaError(f"MS-SSIM diversity needs at least 2 images, got {n}")
    generator = torch.Generator().manual_seed(seed)
    first = torch.randint(0, n, (pairs,), generator=generator)
    second = (first + torch.randint(1, n, (pairs,), generator=generator)) % n  # never the same image
    values = [ms_ssim(images[first[i : i + 32]], images[second[i : i + 32]], data_range) for i in range(0, pairs, 32)]
    return float(torch.cat(values).mean())
