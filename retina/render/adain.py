"""Noise injection + adaptive instance normalisation for DR-GAN's synthesis blocks (section III-D).

The features are concatenated with a Gaussian noise volume of a quarter of their channels, fused back by a
1x1 conv, instance-normalised, and scaled/shifted by gamma/beta computed from the grading style vector
(AdaIN, Huang & Belongie 2017, eq. 2). Without a style (the ``--no-agm`` ablation) the affine parameters
are plain learned ones.
"""

from __future__ import annotations

import torch
from torch import nn

from retina.common.seeding import per_sample_randn


class NoiseAdaIN(nn.Module):
    def __init__(self, channels: int, style_dim: int = 0):
        super().__init__()
        self.noise_channels = max(1, channels // 4)
        self.fuse = nn.Conv2d(channels + self.noise_channels, channels, 1)
        self.norm = nn.InstanceNorm2d(channels, affine=style_dim == 0)
        self.affine = nn.Linear(style_dim, 2 * channels) if style_dim else None
        if self.affine is not None:
            # start as the identity transform: gamma = 1, beta = 0
            nn.init.zeros_(self.affine.weight)
            nn.init.zeros_(self.affine.bias)

    def forward(
        self, x: torch.Tensor, style: torch.Tensor | None = None, generators: list[torch.Generator] | None = None
    ) -> torch.Tensor:
        _, _, height, width = x.shape
        noise = per_sample_randn(generators, (self.noise_channels, height, width), x)
        x = self.norm(self.fuse(torch.cat([x, noise], dim=1)))
        if self.affine is None:
            return x
        if style is None:
            raise ValueError("this AdaIN block needs a grading style vector")
        gamma, beta = self.affine(style).chunk(2, dim=1)
        return x * (1 + gamma[:, :, None, None]) + beta[:, :, None, None]
