"""ACGAN mask generator and discriminator with an auxiliary grade classifier (Odena et al. 2017, as used by
Son et al. 2021 for DR semantic labels).

Son et al.'s training tricks (two G steps per D step, one-sided label smoothing 0.9, ADA) live in the
training loop and :mod:`retina.layout.config`; this module holds only the networks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from retina.common.schema import NUM_GRADES
from retina.layout.config import GeneratorConfig


class ACGenerator(nn.Module):
    """``forward(z, grades, generators, truncation) -> logits (B, C, res, res)``.

    Truncation scales z toward 0 (the per-grade mean input). ``generators`` is accepted for interface
    parity with the StyleGAN generator; this network has no noise inputs besides z.
    """

    def __init__(self, config: GeneratorConfig):
        super().__init__()
        self.config = config
        self.z_dim = config.z_dim
        self.embed = nn.Embedding(NUM_GRADES, config.embed_dim)
        c4 = config.feature_channels(4)
        self.project = nn.Linear(config.z_dim + config.embed_dim, c4 * 16)
        self.norm4 = nn.BatchNorm2d(c4)
        blocks, resolution, cin = [], 8, c4
        while resolution <= config.res:
            cout = config.feature_channels(resolution)
            blocks += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cin, cout, 3, padding=1),
                       nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
            resolution, cin = resolution * 2, cout
        self.blocks = nn.Sequential(*blocks)
        self.to_masks = nn.Conv2d(cin, len(config.channels), 3, padding=1)

    def forward(
        self,
        z: torch.Tensor,
        grades: torch.Tensor,
        generators: list[torch.Generator] | None = None,
        truncation: float = 1.0,
    ) -> torch.Tensor:
        x = self.project(torch.cat([z * truncation, self.embed(grades)], dim=1))
        x = F.relu(self.norm4(x.view(z.shape[0], -1, 4, 4)))
        return self.to_masks(self.blocks(x))


class ACDiscriminator(nn.Module):
    """``forward(x, grades) -> (real/fake logits (B,), grade logits (B, 5))``."""

    def __init__(self, config: GeneratorConfig, dropout: float = 0.25):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(len(config.channels), config.feature_channels(config.res), 3, padding=1),
                                   nn.LeakyReLU(0.2)]
        resolution = config.res
        while resolution > 4:
            layers += [nn.Conv2d(config.feature_channels(resolution), config.feature_channels(resolution // 2), 4,
                                 stride=2, padding=1), nn.LeakyReLU(0.2), nn.Dropout(dropout)]
            resolution //= 2
        self.features = nn.Sequential(*layers)
        flat = config.feature_channels(4) * 16
        self.adversarial = nn.Linear(flat, 1)
        self.classifier = nn.Linear(flat, NUM_GRADES)

    def forward(self, x: torch.Tensor, grades: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.features(x).flatten(1)
        return self.adversarial(features).squeeze(1), self.classifier(features)
