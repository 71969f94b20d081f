"""Input normalisation for torchvision ImageNet backbones (ResNet, VGG, Inception-v3, EfficientNet ports).

Our images live in [-1, 1]; backbones trained on ImageNet expect (x - mean) / std of [0, 1] images. A network
must see the same normalisation when it is trained and when its features are read, so every caller goes here.
"""

from __future__ import annotations

import torch

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


def imagenet_normalise(images: torch.Tensor) -> torch.Tensor:
    """``(B, 3, H, W)`` in [-1, 1] -> ImageNet-normalised input."""
    mean = torch.tensor(IMAGENET_MEAN, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
    return ((images + 1) / 2 - mean) / std
