"""A reference SPADE generator written to Park et al. (2019), used only as a yardstick in benchmarks.

It follows the paper's description: a latent vector mapped to a small grid, then SPADE residual blocks
(parameter-free batch normalisation, modulated per pixel by gamma/beta from a shared 3x3 conv of the resized
semantic map with 128 hidden channels), nearest-neighbour upsampling between blocks, channel widths
16·ngf down to 1·ngf, a final LeakyReLU + 3x3 conv + tanh. Five upsamplings ("normal" setting), so a 256 px
output starts from an 8x8 grid.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class ReferenceSPADE(nn.Module):
    def __init__(self, label_channels: int, norm_channels: int, hidden: int = 128):
        super().__init__()
        self.norm = nn.BatchNorm2d(norm_channels, affine=False)
        self.shared = nn.Sequential(nn.Conv2d(label_channels, hidden, 3, padding=1), nn.ReLU())
        self.gamma = nn.Conv2d(hidden, norm_channels, 3, padding=1)
        self.beta = nn.Conv2d(hidden, norm_channels, 3, padding=1)

    def forward(self, x: torch.Tensor, segmap: torch.Tensor) -> torch.Tensor:
        segmap = F.interpolate(segmap, size=x.shape[-2:], mode="nearest")
        actv = self.shared(segmap)
        return self.norm(x) * (1 + self.gamma(actv)) + self.beta(actv)


class ReferenceSPADEResBlock(nn.Module):
    def __init__(self, fin: int, fout: int, label_channels: int):
        super().__init__()
        middle = min(fin, fout)
        self.learned_shortcut = fin != fout
        self.conv_0 = nn.Conv2d(fin, middle, 3, padding=1)
        self.conv_1 = nn.Conv2d(middle, fout, 3, padding=1)
        self.norm_0 = ReferenceSPADE(label_channels, fin)
        self.norm_1 = ReferenceSPADE(label_channels, middle)
        if self.learned_shortcut:
            self.conv_s = nn.Conv2d(fin, fout, 1, bias=False)
            self.norm_s = ReferenceSPADE(label_channels, fin)

    def forward(self, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        shortcut = self.conv_s(self.norm_s(x, seg)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, seg), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, seg), 0.2))
        return shortcut + dx


class ReferenceSPADEGenerator(nn.Module):
    """``forward(segmap (B, C, H, W)) -> image (B, 3, H, W)``; ``ngf`` is the width (64 in the paper)."""

    def __init__(self, label_channels: int, ngf: int = 64, res: int = 256, z_dim: int = 256):
        super().__init__()
        self.z_dim = z_dim
        self.start = res // 2**5
        self.fc = nn.Linear(z_dim, 16 * ngf * self.start * self.start)
        self.ngf = ngf
        self.head_0 = ReferenceSPADEResBlock(16 * ngf, 16 * ngf, label_channels)
        self.g_middle_0 = ReferenceSPADEResBlock(16 * ngf, 16 * ngf, label_channels)
        self.g_middle_1 = ReferenceSPADEResBlock(16 * ngf, 16 * ngf, label_channels)
        self.up_0 = ReferenceSPADEResBlock(16 * ngf, 8 * ngf, label_channels)
        self.up_1 = ReferenceSPADEResBlock(8 * ngf, 4 * ngf, label_channels)
        self.up_2 = ReferenceSPADEResBlock(4 * ngf, 2 * ngf, label_channels)
        self.up_3 = ReferenceSPADEResBlock(2 * ngf, 1 * ngf, label_channels)
        self.conv_img = nn.Conv2d(ngf, 3, 3, padding=1)

    def forward(self, seg: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        if z is None:
            z = torch.randn(seg.shape[0], self.z_dim, device=seg.device, dtype=seg.dtype)
        x = self.fc(z).view(-1, 16 * self.ngf, self.start, self.start)
        up = nn.functional.interpolate
        x = self.head_0(x, seg)
        x = up(x, scale_factor=2)
        x = self.g_middle_0(x, seg)
        x = self.g_middle_1(x, seg)
        for block in (self.up_0, self.up_1, self.up_2, self.up_3):
            x = up(x, scale_factor=2)
            x = block(x, seg)
        return torch.tanh(self.conv_img(F.leaky_relu(x, 0.2)))


class ReferencePatchDiscriminator(nn.Module):
    """pix2pixHD/SPADE's multi-scale PatchGAN (2 scales, 4 layers, ndf 64) for the training-step reference."""

    def __init__(self, in_channels: int, ndf: int = 64, scales: int = 2):
        super().__init__()

        def single() -> nn.Sequential:
            layers, channels = [], in_channels
            for i, out in enumerate((ndf, ndf * 2, ndf * 4, ndf * 8)):
                stride = 2 if i < 3 else 1
                layers += [nn.Conv2d(channels, out, 4, stride, 2)]
                if i > 0:
                    layers += [nn.InstanceNorm2d(out)]
                layers += [nn.LeakyReLU(0.2)]
                channels = out
            layers += [nn.Conv2d(channels, 1, 4, 1, 2)]
            return nn.Sequential(*layers)

        self.discriminators = nn.ModuleList(single() for _ in range(scales))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for discriminator in self.discriminators:
            outputs.append(discriminator(x))
            x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
        return outputs
