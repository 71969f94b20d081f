"""SkrGAN sketch drafts (Zhang et al. 2019, sec. 2.1): the main structures of a fundus photograph (vessels,
disc rim) as a binary map, used as the structural channel of a layout in place of segmented vessels.

Extraction: Sobel edges -> Gaussian low-pass (removes isolated noise) -> morphological opening then closing
(removes noise, fills the vessel-like structures) -> threshold. The generator that draws sketches from noise
is the vessel AAE (:mod:`retina.layout.aae`) trained on these drafts with ``kind="sketch"``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class SketchConfig:
    blur_sigma: float = 1.0  # Gaussian low-pass, in pixels at the working resolution
    morphology_size: int = 3  # square structuring element of the opening and closing
    threshold_std: float = 1.0  # keep edges above mean + k * std of the in-field edge strength
    fov_level: float = 0.04  # grey level under which a pixel is outside the field of view
    fov_margin: int = 3  # erode the field of view so its rim is not drawn as an edge


def extract_sketch(images: torch.Tensor, config: SketchConfig | None = None) -> torch.Tensor:
    """Sketch drafts bool (B, H, W) from photographs float (B, 3, H, W) in [0, 1]."""
    import kornia

    config = config or SketchConfig()
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"extract_sketch expects (B, 3, H, W) images, got {tuple(images.shape)}")
    grey = kornia.color.rgb_to_grayscale(images.float())
    edges = kornia.filters.sobel(grey)
    size = 2 * int(round(3 * config.blur_sigma)) + 1
    edges = kornia.filters.gaussian_blur2d(edges, (size, size), (config.blur_sigma, config.blur_sigma))
    kernel = torch.ones(config.morphology_size, config.morphology_size, device=images.device)
    edges = kornia.morphology.closing(kornia.morphology.opening(edges, kernel), kernel)
    fov = (grey > config.fov_level).float()
    if config.fov_margin > 0:
        margin = torch.ones(2 * config.fov_margin + 1, 2 * config.fov_margin + 1, device=images.device)
        fov = kornia.morphology.erosion(fov, margin)
    edges = edges * fov
    inside = fov.flatten(1).sum(1).clamp_min(1)
    mean = edges.flatten(1).sum(1) / inside
    variance = ((edges - mean.view(-1, 1, 1, 1)) ** 2 * fov).flatten(1).sum(1) / inside
    threshold = mean + config.threshold_std * variance.sqrt()
    sketch = (edges > threshold.view(-1, 1, 1, 1)) & (fov > 0)
    return sketch[:, 0]
