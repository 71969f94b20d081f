"""Spatial and channel attention (SCA), DR-GAN section III-B, after DANet (Fu et al. 2019).

Spatial branch (DANet's position attention): query/key 1x1 convs reduce C to C/d, value keeps C, and every
position attends to every position of the feature map at the map's OWN resolution: softmax over the key
positions of q k^T (no 1/sqrt(dim) scaling, as DANet and the paper write it), times v. It is exact (not
windowed) and runs through ``torch.nn.functional.scaled_dot_product_attention``, whose flash kernel computes
it block by block without holding the (H*W)^2 map: memory grows with H*W, not (H*W)^2.

Channel branch (DANet's channel attention): energy = X X^T over the C channels (summed over positions,
not divided by N), then DANet's ``softmax(max(energy) - energy)`` over the last axis. The energy is computed
in float32 even under bf16 autocast, and the max-subtraction keeps every exponent <= 0 (softmax subtracts
the row maximum of its input again, so nothing overflows whatever the magnitude of the energy).

Each branch's attended features pass through one more conv and are added to the input with a learned weight;
the weights start at 0, so at initialisation the module is the identity and training lets attention in
gradually (as in SAGAN/DANet).

Memory (benchmarks/sca_memory.py; CPU, fp32, inference, batch 1, DR-GAN at width 64): see
benchmarks/README.md "SCA memory": tens of MB at every scale of a 512 px and a 1024 px render, where the full
map would take up to 1 GiB (512 px) and 16 GiB (1024 px). Time still grows as (H*W)^2: the exact spatial
attention costs 2 (H*W)^2 * 2C FLOPs (q and k zero-padded to C, below), 2.2 TFLOP per image at the finest
scale of a 1024 px render.

``max_grid`` > 0 restores the pre-issue-13 behaviour (attention on an average-pooled grid of at most
max_grid x max_grid positions, upsampled back) and ``channel_energy="mean"`` the old energy divided by N;
both exist only so that checkpoints trained with them still load and render as they did.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

CHANNEL_ENERGIES = ("danet", "mean")


def channel_attention(x: torch.Tensor, energy_form: str = "danet") -> torch.Tensor:
    """DANet's channel attention map applied to ``x`` (B, C, H, W): returns (attention @ X) reshaped as x."""
    flat = x.flatten(2)
    with torch.autocast(x.device.type, enabled=False):
        flat32 = flat.float()
        energy = flat32 @ flat32.transpose(1, 2)  # (B, C, C)
        if energy_form == "danet":
            energy = energy.amax(dim=-1, keepdim=True) - energy
        else:  # legacy: averaged over positions, no max-subtraction
            energy = energy / flat.shape[-1]
        attention = torch.softmax(energy, dim=-1)
    return (attention.to(flat.dtype) @ flat).reshape_as(x)


class SpatialChannelAttention(nn.Module):
    def __init__(self, channels: int, reduction: int = 8, max_grid: int = 0, channel_energy: str = "danet"):
        super().__init__()
        if channel_energy not in CHANNEL_ENERGIES:
            raise ValueError(f"channel energy {channel_energy!r}: choose one of {', '.join(CHANNEL_ENERGIES)}")
        reduced = max(1, channels // reduction)
        self.query = nn.Conv2d(channels, reduced, 1)
        self.key = nn.Conv2d(channels, reduced, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.spatial_out = nn.Conv2d(channels, channels, 3, padding=1)
        self.channel_out = nn.Conv2d(channels, channels, 3, padding=1)
        self.gamma_spatial = nn.Parameter(torch.zeros(1))
        self.gamma_channel = nn.Parameter(torch.zeros(1))
        self.max_grid = max_grid
        self.channel_energy = channel_energy

    def spatial(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        grid = x
        if self.max_grid and height * width > self.max_grid**2:
            grid = F.adaptive_avg_pool2d(x, (min(height, self.max_grid), min(width, self.max_grid)))
        batch, _, gh, gw = grid.shape
        q = self.query(grid).flatten(2).transpose(1, 2)  # (B, N, C/d)
        k = self.key(grid).flatten(2).transpose(1, 2)
        v = self.value(grid).flatten(2).transpose(1, 2)  # (B, N, C)
        # torch's CPU flash kernel needs contiguous q, k, v of one head size (otherwise it falls back to the
        # math path, which holds the (N, N) map): zero-padding q and k to v's size leaves q k^T exactly as it was
        pad = v.shape[-1] - q.shape[-1]
        q, k, v = F.pad(q, (0, pad)), F.pad(k, (0, pad)), v.contiguous()
        attended = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None], scale=1.0)[:, 0]
        attended = attended.transpose(1, 2).reshape(batch, -1, gh, gw)
        if (gh, gw) != (height, width):
            attended = F.interpolate(attended, size=(height, width), mode="bilinear", align_corners=False)
        return attended

    def channel(self, x: torch.Tensor) -> torch.Tensor:
        return channel_attention(x, self.channel_energy)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        out = out + self.gamma_spatial * self.spatial_out(self.spatial(x))
        out = out + self.gamma_channel * self.channel_out(self.channel(x))
        return out
