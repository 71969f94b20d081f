"""MS-SSIM (Wang, Simoncelli & Bovik 2003) and the diversity score SkrGAN reports: the mean MS-SSIM between random
pairs of images of one set (lower = more diverse).

Neither torchmetrics nor pytorch_msssim is installed, and kornia has single-scale SSIM only (no separate
contrast-structure term), so the multi-scale product is written here on kornia's Gaussian filter.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from kornia.filters import gaussian_blur2d

from retina.common.errors import RetinaError

# Wang et al. 2003, section 3.1: five scales, 11x11 Gaussian window with sigma 1.5, K1 = 0.01, K2 = 0.03.
SCALE_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
WINDOW, SIGMA, K1, K2 = 11, 1.5, 0.01, 0.03


def _luminance_and_contrast_structure(x: torch.Tensor, y: torch.Tensor, data_range: float, window: int):
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2

    def blur(t: torch.Tensor) -> torch.Tensor:
        return gaussian_blur2d(t, (window, window), (SIGMA, SIGMA), border_type="reflect")

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    luminance = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
    contrast_structure = (2 * cov + c2) / (var_x + var_y + c2)
    return luminance.mean(dim=(1, 2, 3)), contrast_structure.mean(dim=(1, 2, 3))


def ms_ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per-pair MS-SSIM of ``(N, C, H, W)`` images. Images too small for five scales use as many scales as fit
    (each at least the window size) with the weights renormalised; the window shrinks for images below 11 px."""
    if x.shape != y.shape or x.ndim != 4:
        raise RetinaError(f"MS-SSIM needs two (N, C, H, W) batches of one shape, got {tuple(x.shape)}, "
                          f"{tuple(y.shape)}")
    size = min(x.shape[-2:])
    window = min(WINDOW, size - (1 - size % 2))  # odd, no larger than the image
    if window < 3:
        raise RetinaError(f"MS-SSIM needs images of at least 3 px, got {size}")
    scales = 1
    while scales < len(SCALE_WEIGHTS) and size // (2**scales) >= window:
        scales += 1
    weights = torch.tensor(SCALE_WEIGHTS[:scales], dtype=x.dtype, device=x.device)
    weights = weights / weights.sum()
    x, y = x.float(), y.float()
    factors = []
    for scale in range(scales):
        luminance, contrast_structure = _luminance_and_contrast_structure(x, y, data_range, window)
        last = scale == scales - 1
        value = luminance * contrast_structure if last else contrast_structure
        factors.append(value.clamp_min(1e-6) ** weights[scale])  # negative cs has no real power: floor it
        if not last:
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
    return torch.stack(factors).prod(dim=0)


def msssim_diversity(images: torch.Tensor, pairs: int = 100, seed: int = 0, data_range: float = 1.0) -> float:
    """Mean MS-SSIM over ``pairs`` random pairs of distinct images of one set."""
    n = len(images)
    if n < 2:
        raise RetinaError(f"MS-SSIM diversity needs at least 2 images, got {n}")
    generator = torch.Generator().manual_seed(seed)
    first = torch.randint(0, n, (pairs,), generator=generator)
    second = (first + torch.randint(1, n, (pairs,), generator=generator)) % n  # never the same image
    values = [ms_ssim(images[first[i : i + 32]], images[second[i : i + 32]], data_range) for i in range(0, pairs, 32)]
    return float(torch.cat(values).mean())
