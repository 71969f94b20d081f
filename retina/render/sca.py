"""Spatial and channel attention (SCA), DR-GAN section III-B, after DANet (Fu et al. 2019).

Spatial branch: query/key 1x1 convs reduce C to C/d, value keeps C, softmax over positions. Channel
branch: a C x C softmax attention over channels. Each branch's attended features pass through one more
conv and are added to the input with a learned weight; the weights start at 0, so at initialisation the
module is the identity and training lets attention in gradually (as in SAGAN/DANet).

Memory bound (ours): the spatial attention map is (H*W)^2. Where H*W exceeds ``max_grid**2`` (default
32x32 = 1024 positions), the spatial branch attends on an average-pooled grid of at most
``max_grid x max_grid`` positions and its output is upsampled bilinearly, so the map never exceeds
1024 x 1024 floats (4 MiB per image in fp32) whatever the resolution; the channel branch is C x C.
Measured (CPU, fp32, inference): on a 128 x 320 x 320 input (the paper's finest SCA scale) the module adds
217 MiB peak RSS to a 50 MiB input; the full spatial map there would take 39 GiB.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SpatialChannelAttention(nn.Module):
    def __init__(self, channels: int, reduction: int = 8, max_grid: int = 32):
        super().__init__()
        reduced = max(1, channels // reduction)
        self.query = nn.Conv2d(channels, reduced, 1)
        self.key = nn.Conv2d(channels, reduced, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.spatial_out = nn.Conv2d(channels, channels, 3, padding=1)
        self.channel_out = nn.Conv2d(channels, channels, 3, padding=1)
        self.gamma_spatial = nn.Parameter(torch.zeros(1))
        self.gamma_channel = nn.Parameter(torch.zeros(1))
        self.max_grid = max_grid

    def spatial(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        grid = x
        if height * width > self.max_grid**2:
            grid = F.adaptive_avg_pool2d(x, (min(height, self.max_grid), min(width, self.max_grid)))
        batch, _, gh, gw = grid.shape
        q = self.query(grid).flatten(2).transpose(1, 2)  # (B, N, C/d)
        k = self.key(grid).flatten(2).transpose(1, 2)
        v = self.value(grid).flatten(2).transpose(1, 2)  # (B, N, C)
        # the paper's softmax(q k^T) has no 1/sqrt(dim) scaling
        attended = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None], scale=1.0)[:, 0]
        attended = attended.transpose(1, 2).reshape(batch, -1, gh, gw)
        if (gh, gw) != (height, width):
            attended = F.interpolate(attended, size=(height, width), mode="bilinear", align_corners=False)
        return attended

    @staticmethod
    def channel(x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(2)  # (B, C, N)
        # energies averaged (not summed) over positions so the softmax does not saturate at high resolution
        energy = flat @ flat.transpose(1, 2) / flat.shape[-1]
        attention = torch.softmax(energy, dim=-1)
        return (attention @ flat).reshape_as(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        out = out + self.gamma_spatial * self.spatial_out(self.spatial(x))
        out = out + self.gamma_channel * self.channel_out(self.channel(x))
        return out
