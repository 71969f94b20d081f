"""Multi-scale discriminators: DR-GAN's (section III-C) and pix2pixHD/SPADE's PatchGAN.

DR-GAN: three identical discriminators see masks (+) image at full, 1/2 and 1/4 scale. Each has four convs with
kernel 4, stride 2 and LeakyReLU 0.2 (padding 2 as in pix2pixHD, so tiny inputs keep at least 1 pixel),
then global average pooling to one real/fake score and a DR grade classification head. ``forward``
returns, per discriminator, its intermediate features (for feature matching), score and grade logits.

PatchGAN (Park et al. 2019 appendix A, NVlabs/SPADE's ``MultiscaleDiscriminator`` of ``NLayerDiscriminator``,
from pix2pixHD): ``num_D`` 2 discriminators, the second on a 3x3 stride-2 average-pooled input; each has
``n_layers_D`` 4 kernel-4 convs (widths ndf, 2 ndf, ... capped at 512; stride 2 except the last; padding 2),
every one but the first with spectral norm, no bias and parameter-free instance norm (``norm_D
spectralinstance``), LeakyReLU 0.2, then a kernel-4 conv to a one-channel patch map (no pooling). The features
for feature matching are the outputs of the four LeakyReLU layers; there is no grade head.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from retina.common.schema import NUM_GRADES


@dataclass
class DOutput:
    features: list[torch.Tensor]
    score: torch.Tensor  # (B,) for DR-GAN's D, a patch map (B, 1, h, w) for the PatchGAN
    grade_logits: torch.Tensor | None  # (B, NUM_GRADES); None for the PatchGAN


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
    def __init__(self, mask_channels: int, width: int = 64, num_scales: int = 3, layers: int = 4,
                 scale_discriminator: type[nn.Module] | None = None):
        super().__init__()
        kind = scale_discriminator or ScaleDiscriminator
        self.discriminators = nn.ModuleList(kind(mask_channels + 3, width, layers) for _ in range(num_scales))

    def forward(self, masks: torch.Tensor, images: torch.Tensor) -> list[DOutput]:
        x = torch.cat([masks, images], dim=1)
        outputs = []
        for i, discriminator in enumerate(self.discriminators):
            if i:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            outputs.append(discriminator(x))
        return outputs


class PatchDiscriminator(nn.Module):
    """NVlabs' ``NLayerDiscriminator`` (see the module docstring)."""

    def __init__(self, in_channels: int, width: int = 64, layers: int = 4):
        super().__init__()
        blocks = [nn.Sequential(nn.Conv2d(in_channels, width, 4, stride=2, padding=2), nn.LeakyReLU(0.2))]
        cin = width
        for n in range(1, layers):
            cout = min(cin * 2, 512)
            stride = 1 if n == layers - 1 else 2
            blocks.append(nn.Sequential(
                spectral_norm(nn.Conv2d(cin, cout, 4, stride=stride, padding=2, bias=False)),
                nn.InstanceNorm2d(cout, affine=False), nn.LeakyReLU(0.2),
            ))
            cin = cout
        self.blocks = nn.ModuleList(blocks)
        self.score = nn.Conv2d(cin, 1, 4, stride=1, padding=2)

    def forward(self, x: torch.Tensor) -> DOutput:
        features = []
        for block in self.blocks:
            x = block(x)
            features.append(x)
        return DOutput(features, self.score(x), None)


class MultiScalePatchDiscriminator(MultiScaleDiscriminator):
    """NVlabs' ``MultiscaleDiscriminator``: PatchGANs on the full and 3x3-average-pooled inputs."""

    def __init__(self, mask_channels: int, width: int = 64, num_scales: int = 2, layers: int = 4):
        super().__init__(mask_channels, width, num_scales, layers, PatchDiscriminator)


def build_discriminator(config) -> nn.Module:
    """The discriminator a :class:`~retina.render.config.RenderConfig` names."""
    multi_scale = MultiScalePatchDiscriminator if config.discriminator == "patchgan" else MultiScaleDiscriminator
    return multi_scale(len(config.channels), config.width, config.num_discriminators, config.d_layers)
