"""DR-GAN's two-stage retina generator (Zhou et al. 2020, section III-A/B/D/E).

G_m (global generator, works at res/2):
    encoding blocks  conv 7x7, then three 3x3 stride-2 convs, each with BatchNorm + ReLU;
    7 residual blocks at 1/8 of G_m's resolution;
    3 synthesis blocks at 1/8, 1/4, 1/2 of G_m (the paper's 80, 160, 320 px for a 640 px G_m): noise (C/4
    channels) + 1x1 fuse + AdaIN from the grading style -> ReLU, then [synthesis features, encoder features
    of that scale, resized masks] -> conv -> SCA (d = 8, 16, 32 from the coarsest scale) -> x2 upsampling
    (the paper's transposed conv, or by default resize + conv: see ``up_conv``). SCA thus runs before each
    upsampling, at the feature map's own resolution (retina/render/sca.py). ``synthesis_order="legacy"``
    (upsampling first, SCA at 1/4, 1/2, 1/1) keeps checkpoints from before issue 13 loadable;
    a grade head (conv + global average pooling) on the last encoding block predicts the grade at test time
    (III-E).
G_l (local enhancer, x2): two convs (7x7, then 3x3 stride 2); the x2 upsampling takes the sum of G_l's conv
    features and G_m's last synthesis features; a 3x3 conv at that resolution; conv 7x7 to RGB.

Channel widths (ours, for speed): ``width`` channels at G_m's full resolution, doubling per downsampling
(capped at 8x and 512), so most computation happens at low resolution; G_l runs at width/2, like
pix2pixHD's local enhancer. Coarse stage: G_m alone renders res/2; fine stage: G_m + G_l render res.
"""

from __future__ import annotations

import torch
from torch import nn

from retina.common.dataset import resize_masks
from retina.common.schema import NUM_GRADES
from retina.render.adain import NoiseAdaIN
from retina.render.config import SYNTHESIS_ORDERS, UPSAMPLE_MODES
from retina.render.grading import MappingNetwork
from retina.render.sca import SpatialChannelAttention


def conv_bn_relu(cin: int, cout: int, kernel: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


def up_conv(cin: int, cout: int, mode: str = "resize") -> nn.Module:
    """x2 upsampling with a learned 3x3 filter.

    "transpose": the paper's 3x3 stride-2 transposed convolution. Its kernel overlaps unevenly (even output
    pixels get one tap per axis, odd ones two), which paints a checkerboard over the whole image.
    "resize": bilinear x2 then a 3x3 convolution, which weights every output pixel alike (Odena et al. 2016,
    "Deconvolution and checkerboard artifacts", Distill). Bilinear rather than nearest: on an untrained fine
    generator fed a constant mask, the 2x2 pixel phase explains at most 1 % of the output's variance with
    bilinear, up to 4 % with nearest and 4-88 % with "transpose" (40 seeds, 32 px, width 8).
    """
    if mode == "transpose":
        return nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1)
    if mode == "resize":
        return nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                             nn.Conv2d(cin, cout, 3, padding=1))
    raise ValueError(f"upsample mode {mode!r}: choose one of {', '.join(UPSAMPLE_MODES)}")


class ResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class SynthesisBlock(nn.Module):
    """One synthesis block of G_m. ``order`` "paper" (III-B): at the block's own scale, noise + AdaIN -> ReLU ->
    [features, encoder features of that scale, resized masks] -> conv -> SCA, then the x2 upsampling to the
    next block. "legacy" (checkpoints from before issue 13): upsampling first, SCA last, one scale finer."""

    def __init__(self, cin: int, cout: int, skip: int, mask_channels: int, style_dim: int, reduction: int,
                 sca: bool, max_grid: int, upsample: str = "resize", order: str = "paper",
                 channel_energy: str = "danet"):
        super().__init__()
        self.order = order
        here = cin if order == "paper" else cout  # channels at the scale where AdaIN, fuse and SCA run
        self.up = up_conv(cin, cout, upsample)
        self.adain = NoiseAdaIN(here, style_dim)
        self.fuse = nn.Sequential(nn.Conv2d(here + skip + mask_channels, here, 3, padding=1), nn.ReLU(inplace=True))
        self.attention = (SpatialChannelAttention(here, reduction, max_grid, channel_energy) if sca
                          else nn.Identity())

    def forward(self, x, skip, masks, style, generators):
        if self.order != "paper":
            x = self.up(x)
        x = torch.relu(self.adain(x, style, generators))
        x = self.fuse(torch.cat([x, skip, resize_masks(masks, x.shape[-1])], dim=1))
        x = self.attention(x)
        return self.up(x) if self.order == "paper" else x


class DRGANGenerator(nn.Module):
    def __init__(self, mask_channels: int, width: int = 64, fine: bool = True, residual_blocks: int = 7,
                 sca: bool = True, sca_reduction: tuple[int, ...] = (8, 16, 32), sca_max_grid: int = 0,
                 grading_dim: int = 0, style_dim: int = 256, mapping_layers: int = 4, upsample: str = "resize",
                 synthesis_order: str = "paper", sca_channel_energy: str = "danet"):
        super().__init__()
        if synthesis_order not in SYNTHESIS_ORDERS:
            raise ValueError(f"synthesis order {synthesis_order!r}: choose one of {', '.join(SYNTHESIS_ORDERS)}")
        self.fine = fine
        self.synthesis_order = synthesis_order
        widths = [min(width * 2**i, 8 * width, 512) for i in range(4)]
        self.encoder = nn.ModuleList(
            [conv_bn_relu(mask_channels, widths[0], 7)]
            + [conv_bn_relu(widths[i], widths[i + 1], 3, stride=2) for i in range(3)]
        )
        self.residual = nn.Sequential(*[ResidualBlock(widths[3]) for _ in range(residual_blocks)])
        self.grade_head = nn.Conv2d(widths[3], NUM_GRADES, 3, padding=1)
        self.mapping = MappingNetwork(grading_dim, style_dim, mapping_layers) if grading_dim else None
        adain_style = style_dim if grading_dim else 0
        self.synthesis = nn.ModuleList(
            SynthesisBlock(widths[3 - i], widths[2 - i], widths[3 - i if synthesis_order == "paper" else 2 - i],
                           mask_channels, adain_style, sca_reduction[min(i, len(sca_reduction) - 1)], sca,
                           sca_max_grid, upsample, synthesis_order, sca_channel_energy)
            for i in range(3)
        )
        self.to_rgb_m = nn.Sequential(nn.Conv2d(widths[0], 3, 7, padding=3), nn.Tanh())
        if fine:
            local = max(4, width // 2)
            self.local_down = nn.Sequential(conv_bn_relu(mask_channels, local, 7),
                                            conv_bn_relu(local, widths[0], 3, stride=2))
            # the second layer keeps the resolution; "transpose" keeps its stride-1 transposed conv so that
            # checkpoints trained with it load
            same_res = (nn.ConvTranspose2d(local, local, 3, padding=1) if upsample == "transpose"
                        else nn.Conv2d(local, local, 3, padding=1))
            self.local_up = nn.Sequential(
                up_conv(widths[0], local, upsample), nn.BatchNorm2d(local), nn.ReLU(inplace=True),
                same_res, nn.BatchNorm2d(local), nn.ReLU(inplace=True),
                nn.Conv2d(local, 3, 7, padding=3), nn.Tanh(),
            )

    def encode(self, masks: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Encoder features (finest first) and the grade logits (B, NUM_GRADES) of G_m's input masks."""
        if self.fine:
            masks = resize_masks(masks, masks.shape[-1] // 2)
        features = []
        x = masks
        for block in self.encoder:
            x = block(x)
            features.append(x)
        return features, self.grade_head(x).mean(dim=(2, 3))

    def forward(self, masks: torch.Tensor, grading: torch.Tensor | None = None,
                generators: list[torch.Generator] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``masks`` (B, C, R, R) in {0,1}, ``grading`` standardised grading vectors (B, D) -> image, logits."""
        global_masks = resize_masks(masks, masks.shape[-1] // 2) if self.fine else masks
        features, logits = self.encode(masks)
        style = None
        if self.mapping is not None:
            if grading is None:
                raise ValueError("this generator was trained with grading vectors; pass them")
            style = self.mapping(grading)
        x = self.residual(features[-1])
        # "paper": block i works at 1/8, 1/4, 1/2 of G_m with the encoder features of that scale, then upsamples
        offset = 3 if self.synthesis_order == "paper" else 2
        for i, block in enumerate(self.synthesis):
            x = block(x, features[offset - i], global_masks, style, generators)
        if not self.fine:
            return self.to_rgb_m(x), logits
        return self.local_up(self.local_down(masks) + x), logits
