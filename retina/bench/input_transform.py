"""What a segmenter sees of a photograph: the RGB image as it is, or the green channel after CLAHE.

Vessel segmenters on DRIVE conventionally read the green channel, where vessels have the most contrast, with
contrast-limited adaptive histogram equalisation (CLAHE) evening out illumination. It also makes a segmenter
trained on one camera usable on another: DRIVE's pale photographs and IDRiD's deep orange ones differ mostly in
colour and brightness, which the equalised green channel removes. The transform sits inside the model, so a saved
segmenter applies it wherever it is loaded (``retina data annotate``).
"""

from __future__ import annotations

import torch
from torch import nn

INPUTS = ("rgb", "green-clahe")
CLAHE_CLIP, CLAHE_GRID = 2.0, (8, 8)  # OpenCV's common vessel-preprocessing values


class GreenCLAHE(nn.Module):
    """``(B, 3, H, W)`` in [-1, 1] -> ``(B, 1, H, W)`` in [-1, 1]: green channel, CLAHE."""

    channels = 1  # what the network behind it reads

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        from kornia.enhance import equalize_clahe

        green = ((images[:, 1:2].float() + 1) / 2).clamp(0, 1)
        return equalize_clahe(green, clip_limit=CLAHE_CLIP, grid_size=CLAHE_GRID) * 2 - 1


class WithInput(nn.Module):
    """A segmenter behind its input transform; keeps the network's description and size multiple."""

    def __init__(self, transform: nn.Module, network: nn.Module, name: str):
        super().__init__()
        self.transform = transform
        self.network = network
        self.description = f"{network.description}, input {name}"
        self.multiple = getattr(network, "multiple", 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        with torch.autocast(images.device.type, enabled=False):  # CLAHE's histograms in fp32
            prepared = self.transform(images)
        return self.network(prepared)
