"""Multi-scale discriminators (DR-GAN section III-C, after pix2pixHD).

Three identical discriminators see masks (+) image at full, 1/2 and 1/4 scale. Each has four convs with
kernel 4, stride 2 and LeakyReLU 0.2 (padding 2 as in pix2pixHD, so tiny inputs keep at least 1 pixel),
then global average pooling to one real/fake score and a DR grade classification head. ``forward``
returns, per discriminator, its intermediate features (for feature matching), score and grade logits.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from retina.common.schema import NUM_GRADES


@dataclass
class DOutput:
    features: list[torch.Tensor]
    score: torch.Tensor  # (B,)
    grade_logits: torch.Tensor  # (B, NUM_GRADES)


class ScaleDiscriminator(nn.Module):
    def __init__(self, in_channels: int, width: int = 64, layers: int = 4):
        super().__init__()
        blocks = []
        cin = in_channels
        for i in range(layers):
            cout = min(width * 2**i, 512)
            blocks.append(nn.Sequential(nn.Conv2d(cin, cout, 4, stride=2, padding=2), nn.LeakyReLU(0.2, inplace=True)))
            cin = cout
        self.blocks = nn.ModuleList(blocks)
        self.score = nn.Conv2d(cin, 1, 1)
        self.grade = nn.Linear(cin, NUM_GRADES)

    def forward(self, x: torch.Tensor) -> DOutput:
        features = []
        for block in self.blocks:
            x = block(x)
            features.append(x)
        return DOutput(features, self.score(x).mean(dim=(1, 2, 3)), self.grade(x.mean(dim=(2, 3))))


class MultiScaleDiscriminator(nn.Module):
    def __init__(self, mask_channels: int, width: int = 64, num_scales: int = 3, layers: int = 4):
        super().__init__()
        self.discriminators = nn.ModuleList(
            ScaleDiscriminator(mask_channels + 3, width, layers) for _ in range(num_scales)
        )

    def forward(self, masks: torch.Tensor, images: torch.Tensor) -> list[DOutput]:
        x = torch.cat([masks, images], dim=1)
        outputs = []
        for i, discriminator in enumerate(self.discriminators):
            if i:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            outputs.append(discriminator(x))
        return outputs
