"""SPADE generator (Park et al. 2019, section 3 and appendix A), fed by the multi-label mask stack.

Unlike SPADE's one-hot label map, the masks overlap (a haemorrhage on a vessel keeps both planes), so the
SPADE modulation convs read the C binary planes directly. The generator starts from a latent z
(256-d, drawn per sample) mapped by a linear layer to a small grid, then SPADE residual blocks with x2
upsampling. Normalisation is parameter-free instance norm (Park use synchronised batch norm) so that a
sample's output does not depend on the rest of its batch. Grades do not condition this generator.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from retina.common.dataset import resize_masks


class SPADE(nn.Module):
    def __init__(self, channels: int, mask_channels: int, hidden: int):
        super().__init__()
        self.norm = nn.InstanceNorm2d(channels, affine=False)
        self.shared = nn.Sequential(nn.Conv2d(mask_channels, hidden, 3, padding=1), nn.ReLU(inplace=True))
        self.gamma = nn.Conv2d(hidden, channels, 3, padding=1)
        self.beta = nn.Conv2d(hidden, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        actv = self.shared(resize_masks(masks, x.shape[-1]))
        return self.norm(x) * (1 + self.gamma(actv)) + self.beta(actv)


class SPADEResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, mask_channels: int, hidden: int):
        super().__init__()
        middle = min(cin, cout)
        self.norm_0 = SPADE(cin, mask_channels, hidden)
        self.conv_0 = nn.Conv2d(cin, middle, 3, padding=1)
        self.norm_1 = SPADE(middle, mask_channels, hidden)
        self.conv_1 = nn.Conv2d(middle, cout, 3, padding=1)
        self.shortcut = None
        if cin != cout:
            self.norm_s = SPADE(cin, mask_channels, hidden)
            self.shortcut = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        skip = x if self.shortcut is None else self.shortcut(self.norm_s(x, masks))
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, masks), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, masks), 0.2))
        return skip + dx


class SPADEGenerator(nn.Module):
    def __init__(self, mask_channels: int, res: int, width: int = 64, z_dim: int = 256):
        super().__init__()
        # Park et al. upsample 5 times from a 1/32 grid ("normal" setting); smaller images upsample less
        # so that the starting grid stays at least 4 x 4
        self.ups = max(1, min(5, int(math.log2(res)) - 2))
        self.start = res // 2**self.ups
        self.z_dim = z_dim
        hidden = 2 * width  # SPADE's 128 hidden channels at nf = 64
        widths = [min(16, 2 ** (self.ups - i)) * width for i in range(self.ups + 1)]
        self.fc = nn.Linear(z_dim, widths[0] * self.start**2)
        self.head = SPADEResBlock(widths[0], widths[0], mask_channels, hidden)
        self.blocks = nn.ModuleList(
            SPADEResBlock(widths[i], widths[i + 1], mask_channels, hidden) for i in range(self.ups)
        )
        self.to_rgb = nn.Conv2d(widths[-1], 3, 3, padding=1)
        self.widths = widths

    def forward(self, masks: torch.Tensor, grading: torch.Tensor | None = None,
                generators: list[torch.Generator] | None = None) -> tuple[torch.Tensor, None]:
        batch = masks.shape[0]
        if generators is None:
            z = torch.randn(batch, self.z_dim, device=masks.device)
        else:
            z = torch.stack([torch.randn(self.z_dim, generator=g, device=masks.device) for g in generators])
        x = self.fc(z.to(masks.dtype)).view(batch, self.widths[0], self.start, self.start)
        x = self.head(x, masks)
        for block in self.blocks:
            x = block(F.interpolate(x, scale_factor=2, mode="nearest"), masks)
        return torch.tanh(self.to_rgb(F.leaky_relu(x, 0.2))), None


def build_spade(config) -> SPADEGenerator:
    """The SPADE generator a :class:`~retina.render.config.RenderConfig` describes."""
    return SPADEGenerator(len(config.channels), config.res, config.width, config.spade_z_dim)
