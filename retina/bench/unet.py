"""A basic U-Net (Ronneberger et al. 2015), the segmenter of Son et al. Table 1(c) and SkrGAN Table 2.

Four down-sampling stages with two 3x3 convolutions each, transposed-convolution up-sampling and skip
concatenations. ``width`` is the first stage's channel count (64 in the paper; 8-16 for CPU tests).
``forward`` returns logits; :meth:`probabilities` applies the sigmoid (multi-label: lesions may overlap).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class UNetConfig:
    in_channels: int = 3
    out_channels: int = 2
    width: int = 64  # Ronneberger et al. Fig. 1
    depth: int = 4  # number of 2x down-samplings; the input side must be divisible by 2**depth


def _double_conv(channels_in: int, channels_out: int) -> nn.Sequential:
    # BatchNorm is not in the 2015 paper; it makes training from scratch on tiny batches stable.
    return nn.Sequential(
        nn.Conv2d(channels_in, channels_out, 3, padding=1, bias=False), nn.BatchNorm2d(channels_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(channels_out, channels_out, 3, padding=1, bias=False), nn.BatchNorm2d(channels_out),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    def __init__(self, config: UNetConfig | None = None):
        super().__init__()
        self.config = c = config or UNetConfig()
        widths = [c.width * 2**i for i in range(c.depth + 1)]
        self.down = nn.ModuleList([_double_conv(c.in_channels, widths[0])])
        self.down.extend(_double_conv(widths[i], widths[i + 1]) for i in range(c.depth))
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList(nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2) for i in
                                reversed(range(c.depth)))
        self.merge = nn.ModuleList(_double_conv(widths[i] * 2, widths[i]) for i in reversed(range(c.depth)))
        self.head = nn.Conv2d(widths[0], c.out_channels, 1)

    @property
    def multiple(self) -> int:
        return 2**self.config.depth

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if image.shape[-1] % self.multiple or image.shape[-2] % self.multiple:
            raise ValueError(f"U-Net input side {tuple(image.shape[-2:])} must be divisible by {self.multiple}")
        skips = []
        x = image
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else self.pool(x))
            skips.append(x)
        x = skips.pop()
        for up, merge in zip(self.up, self.merge, strict=True):
            x = merge(torch.cat([up(x), skips.pop()], dim=1))
        return self.head(x)

    def probabilities(self, image: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self(image))
