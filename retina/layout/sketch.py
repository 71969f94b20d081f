"""SkrGAN sketch drafts (Zhang et al. 2019, sec. 2.1): the main structures of a fundus photograph (vessels,
disc rim) as a binary map, used as the structural channel of a layout in place of segmented vessels.

Extraction: Sobel edges -> Gaussian low-pass (removes isolated noise) -> morphological opening then closing
(removes noise, fills the vessel-like structures) -> threshold. The paper gives no filter sizes or threshold:
ours are in :class:`SketchConfig`.

:func:`load_sketch_pairs` makes SkrGAN's training set, the photographs X and their drafts Y: the sketch
guidance module G_S (:mod:`retina.layout.sketch_gan`) learns Y, the colour render mapping G_P
(:mod:`retina.render.skrgan`) learns (Y, X) pairs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from retina.common.errors import RetinaError


@dataclass
class SketchConfig:
    blur_sigma: float = 1.0  # Gaussian low-pass, in pixels at the extraction resolution
    morphology_size: int = 3  # square structuring element of the opening and closing
    # Keep edges above mean + k * std of the in-field edge strength. 0.5 keeps the main vessel tree of DRIVE
    # photographs at 256 px; 1.0 kept little more than the disc rim (looked at, not measured).
    threshold_std: float = 0.5
    fov_level: float = 0.04  # grey level under which a pixel is outside the field of view
    fov_margin: float = 0.02  # erode the field of view by this fraction of the side, so its rim is no edge
    # Drafts are extracted at no less than this side (the filters above are in its pixels), then max-pooled
    # to the training resolution: at 128 px the vessels are too thin for Sobel + opening to keep them.
    extract_res: int = 256


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
    margin_px = int(round(config.fov_margin * images.shape[-1]))
    if margin_px > 0:
        margin = torch.ones(2 * margin_px + 1, 2 * margin_px + 1, device=images.device)
        fov = kornia.morphology.erosion(fov, margin)
    edges = edges * fov
    inside = fov.flatten(1).sum(1).clamp_min(1)
    mean = edges.flatten(1).sum(1) / inside
    variance = ((edges - mean.view(-1, 1, 1, 1)) ** 2 * fov).flatten(1).sum(1) / inside
    threshold = mean + config.threshold_std * variance.sqrt()
    sketch = (edges > threshold.view(-1, 1, 1, 1)) & (fov > 0)
    return sketch[:, 0]


def load_sketch_pairs(data: str | Path, res: int, config: SketchConfig | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(photographs float (N, 3, res, res) in [0, 1], sketches float (N, 1, res, res) in {0, 1})`` of the
    ``split=train`` rows of a canonical set (validation and test photographs are never trained on)."""
    from retina.common.canonical import CanonicalDataset
    from retina.common.dataset import resize_image, resize_masks

    dataset = CanonicalDataset(data)
    dataset.require_images("SkrGAN training (sketches are extracted from the photographs)")
    names = [s.name for s in dataset.samples if s.split == "train"]
    if not names:
        raise RetinaError(f"{dataset.root}: no split=train rows in labels.csv to train on")
    config = config or SketchConfig()
    large = torch.stack([
        resize_image(torch.from_numpy(dataset.load_image(n)).permute(2, 0, 1).float() / 255,
                     max(res, config.extract_res)) for n in names
    ])
    sketches = resize_masks(extract_sketch(large, config)[:, None].float(), res)
    return resize_image(large, res), sketches
