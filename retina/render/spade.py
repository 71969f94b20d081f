"""SPADE generator and image encoder (Park et al. 2019, section 3 and appendix A; NVlabs/SPADE's code).

Structure as NVlabs' ``SPADEGenerator`` with ``num_upsampling_layers normal``: seven SPADE residual blocks
(head_0, G_middle_0, G_middle_1, up_0 ... up_3) with widths 16, 16, 16, 8, 4, 2, 1 x ngf, nearest x2
upsampling after head_0, after G_middle_1 and after up_0 ... up_2, so the first grid is 1/32 of the output;
LeakyReLU 0.2 + 3x3 conv + tanh to RGB. The residual blocks' convs carry spectral norm (NVlabs' default
``norm_G spectralspade...3x3``); each SPADE layer has its own 3x3 ``mlp_shared`` (128 hidden, ReLU) and
3x3 gamma/beta convs. Without ``vae`` the generator is deterministic and starts from a 3x3 conv of the
downsampled mask stack (NVlabs' default); with ``vae`` it starts from a linear map of z (256-d), drawn from
N(0, I) at test time and, in training, from the image encoder's posterior (with a KL loss; multimodal
synthesis, Park et al. section 4 "Multi-modal synthesis").

Deviations (ours): the masks overlap (a haemorrhage on a vessel keeps both planes), so SPADE reads the C
binary planes directly instead of a one-hot label map, and resizes them by max-pooling (a 3-pixel
microaneurysm survives at 1/32; nearest-neighbour would drop it). The parameter-free norm is instance norm
by default so that a sample does not depend on its batch (NVlabs: synchronised batch norm; ``norm="batch"``
gives that). Below 128 px fewer than five upsamplings are made (the earliest ones are skipped) so that the
first grid stays at least 4 x 4; the seven blocks and their widths are unchanged.

Speed (same arithmetic as NVlabs', fewer passes over memory): the ``mlp_shared`` convs of a block's two or
three SPADE layers read the same resized masks, so they run as one conv with their output channels stacked;
each layer's gamma and beta convs run as one conv with 2C outputs; the resized masks are computed once per
resolution and shared by every block. Parameter counts equal NVlabs' (tests/test_render_models.py).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from retina.common.dataset import resize_masks

HIDDEN = 128  # NVlabs: "The dimension of the intermediate embedding space. Yes, hardcoded."
SPADE_NORMS = ("instance", "batch")


class SPADEResBlock(nn.Module):
    """NVlabs' ``SPADEResnetBlock``: [SPADE -> LReLU -> conv] x 2, a learned (SPADE -> 1x1 conv) shortcut
    when the width changes. ``modulations`` computes every SPADE layer's (gamma, beta) of the block."""

    def __init__(self, fin: int, fout: int, mask_channels: int, norm: str = "instance"):
        super().__init__()
        middle = min(fin, fout)
        self.learned_shortcut = fin != fout
        self.conv_0 = spectral_norm(nn.Conv2d(fin, middle, 3, padding=1))
        self.conv_1 = spectral_norm(nn.Conv2d(middle, fout, 3, padding=1))
        # channels each SPADE layer modulates: norm_0 (input), norm_1 (middle), norm_s (input, shortcut)
        self.norm_channels = [fin, middle] + ([fin] if self.learned_shortcut else [])
        if self.learned_shortcut:
            self.conv_s = spectral_norm(nn.Conv2d(fin, fout, 1, bias=False))
        norm_layer = nn.InstanceNorm2d if norm == "instance" else nn.BatchNorm2d
        self.param_free_norms = nn.ModuleList(norm_layer(c, affine=False) for c in self.norm_channels)
        # the layers' mlp_shared convs stacked into one (same weights, one pass over the masks)
        self.mlp_shared = nn.Conv2d(mask_channels, HIDDEN * len(self.norm_channels), 3, padding=1)
        self.mlp_gamma_beta = nn.ModuleList(nn.Conv2d(HIDDEN, 2 * c, 3, padding=1) for c in self.norm_channels)
        self.unit_gain_folded = False

    def modulations(self, masks: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Each SPADE layer's (1 + gamma, beta). The stacked ``mlp_shared`` weight runs as one conv per layer
        on its slice of output channels, and so do the gamma|beta convs: a channel slice of one conv's output
        is a strided view under channels_last, which the next conv or the modulation then reads slowly."""
        mods = []
        for i, conv in enumerate(self.mlp_gamma_beta):
            rows = slice(HIDDEN * i, HIDDEN * (i + 1))
            actv = F.relu(F.conv2d(masks, self.mlp_shared.weight[rows], self.mlp_shared.bias[rows], padding=1),
                          inplace=True)
            # gamma and beta from the two halves of the stacked weight: two contiguous outputs (the modulation
            # over two strided halves of one output was a third of the bf16 time at 256 px)
            channels = self.norm_channels[i]
            gain, beta = (F.conv2d(actv, conv.weight[half], conv.bias[half], padding=1)
                          for half in (slice(0, channels), slice(channels, 2 * channels)))
            mods.append((gain if self.unit_gain_folded else 1 + gain, beta))
        return mods

    def fold_unit_gain(self) -> None:
        """Inference only: add SPADE's 1 of (1 + gamma) into the gamma convs' biases once, instead of one
        full-size addition per layer and call. Not undone: the trainer never calls it."""
        if self.unit_gain_folded:
            return
        with torch.no_grad():
            for conv, channels in zip(self.mlp_gamma_beta, self.norm_channels, strict=True):
                conv.bias[:channels] += 1
        self.unit_gain_folded = True

    def modulate(self, i: int, x: torch.Tensor, gain_beta: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        gain, beta = gain_beta
        # normalised * (1 + gamma) + beta, written as one fused multiply-add
        return torch.addcmul(beta, self.param_free_norms[i](x), gain)

    def forward(self, x: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """``masks``: the mask stack already at x's resolution."""
        mods = self.modulations(masks)
        shortcut = self.conv_s(self.modulate(2, x, mods[2])) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.modulate(0, x, mods[0]), 0.2, inplace=True))
        dx = self.conv_1(F.leaky_relu(self.modulate(1, dx, mods[1]), 0.2, inplace=True))
        return dx.add_(shortcut)


class SPADEEncoder(nn.Module):
    """NVlabs' ``ConvEncoder`` (crop size >= 256): the image resized to 256 px, six 3x3 stride-2 convs
    (spectral norm, no bias, instance norm, LeakyReLU 0.2) to a 4 x 4 grid of 8 ngf channels, then linear
    maps to the posterior's mean and log-variance."""

    def __init__(self, ngf: int, z_dim: int = 256):
        super().__init__()
        widths = [3, ngf, 2 * ngf, 4 * ngf, 8 * ngf, 8 * ngf, 8 * ngf]
        self.layers = nn.ModuleList(
            nn.Sequential(spectral_norm(nn.Conv2d(widths[i], widths[i + 1], 3, stride=2, padding=1, bias=False)),
                          nn.InstanceNorm2d(widths[i + 1], affine=False))
            for i in range(6)
        )
        self.fc_mu = nn.Linear(8 * ngf * 16, z_dim)
        self.fc_var = nn.Linear(8 * ngf * 16, z_dim)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = images
        if x.shape[-2:] != (256, 256):
            x = F.interpolate(x, size=(256, 256), mode="bilinear", align_corners=False)
        for layer in self.layers:
            x = F.leaky_relu(layer(x), 0.2)
        x = x.flatten(1)
        return self.fc_mu(x), self.fc_var(x)


def kld_loss(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, I)), summed over the batch and dimensions as NVlabs' ``KLDLoss``."""
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())


class SPADEGenerator(nn.Module):
    def __init__(self, mask_channels: int, res: int, width: int = 64, z_dim: int = 256, vae: bool = False,
                 norm: str = "instance"):
        super().__init__()
        if norm not in SPADE_NORMS:
            raise ValueError(f"SPADE norm {norm!r}: choose one of {', '.join(SPADE_NORMS)}")
        nf = width
        # "normal": five upsamplings; small test images skip the earliest ones so the first grid is >= 4 x 4
        self.ups = max(1, min(5, int(math.log2(res)) - 2))
        self.start = res // 2**self.ups
        self.z_dim, self.vae, self.nf = z_dim, vae, nf
        if vae:
            self.fc = nn.Linear(z_dim, 16 * nf * self.start**2)
            self.encoder = SPADEEncoder(nf, z_dim)
        else:
            self.fc = nn.Conv2d(mask_channels, 16 * nf, 3, padding=1)
        widths = [16, 16, 16, 16, 8, 4, 2, 1]
        self.blocks = nn.ModuleList(
            SPADEResBlock(widths[i] * nf, widths[i + 1] * nf, mask_channels, norm) for i in range(7)
        )
        # NVlabs upsamples after head_0, G_middle_1, up_0, up_1, up_2 (blocks 0, 2, 3, 4, 5); we keep the last
        # ``ups`` of those
        self.upsample_after = {0, 2, 3, 4, 5} - set([0, 2, 3, 4, 5][: 5 - self.ups])
        self.conv_img = nn.Conv2d(nf, 3, 3, padding=1)

    def sample_z(self, batch: int, like: torch.Tensor, generators: list[torch.Generator] | None) -> torch.Tensor:
        if generators is None:
            return torch.randn(batch, self.z_dim, device=like.device)
        return torch.stack([torch.randn(self.z_dim, generator=g, device=like.device) for g in generators])

    def encode_z(self, images: torch.Tensor, generators: list[torch.Generator] | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """The encoder's reparameterised z for ``images`` and its KL divergence from N(0, I) (``vae`` only)."""
        mu, logvar = self.encoder(images)
        eps = self.sample_z(images.shape[0], images, generators).to(mu.dtype)
        return mu + eps * torch.exp(0.5 * logvar), kld_loss(mu.float(), logvar.float())

    def forward(self, masks: torch.Tensor, grading: torch.Tensor | None = None,
                generators: list[torch.Generator] | None = None, z: torch.Tensor | None = None,
                real: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """masks (B, C, R, R) -> (image (B, 3, R, R), None). With ``vae``: ``z`` defaults to a draw from N(0, I);
        given the ``real`` images (training), z is drawn from their posterior and the KL loss is returned
        in place of None."""
        batch = masks.shape[0]
        kld = None
        if self.vae:
            if real is not None:
                z, kld = self.encode_z(real, generators)
            elif z is None:
                z = self.sample_z(batch, masks, generators)
            x = self.fc(z.to(masks.dtype)).view(batch, 16 * self.nf, self.start, self.start)
        else:
            x = self.fc(resize_masks(masks, self.start))
        resized = {}  # the mask stack at each resolution, shared by the blocks that work there
        for i, block in enumerate(self.blocks):
            size = x.shape[-1]
            if size not in resized:  # in x's memory format, so that no conv has to reorder it
                resized[size] = resize_masks(masks, size).to(x.dtype).contiguous(memory_format=_format_of(x))
            x = block(x, resized[size])
            if i in self.upsample_after:
                x = F.interpolate(x, scale_factor=2, mode="nearest")
        return torch.tanh(self.conv_img(F.leaky_relu(x, 0.2))), kld


def _format_of(x: torch.Tensor) -> torch.memory_format:
    channels_last = x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and x.shape[1] > 1
    return torch.channels_last if channels_last else torch.contiguous_format


def build_spade(config) -> SPADEGenerator:
    """The SPADE generator a :class:`~retina.render.config.RenderConfig` describes."""
    return SPADEGenerator(len(config.channels), config.res, config.width, config.spade_z_dim, config.spade_vae,
                          config.spade_norm)
