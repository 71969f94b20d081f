"""Lesion-Net (Wei et al. 2020, Sec. III-A): a torchvision Inception-v3 contracting path and a short
expansive path of 1x1 convolutions and bilinear up-sampling, cut at 32s/16s/8s/4s/2s (FCN naming).

Each kept backbone stage (output stride 32, 16, 8, 4, 2) gets a 1x1 "score" convolution to one map per
lesion; starting from the coarsest, the running score map is bilinearly up-sampled to the next stage and
added; the last one is up-sampled to the input size. ``forward`` returns logits; :meth:`probabilities`
applies the sigmoid.

Minimum input: Inception-v3 uses unpadded convolutions, so its 32s stage needs an input of at least
75 x 75 pixels (:data:`MIN_INPUT`); smaller inputs are rejected with that message.

ImageNet weights are loaded only when the user supplies them (``retina.eval.weights.find_weights
("inception_v3", weights_dir)``, sha256-checked, ``torch.load(weights_only=True)``). Otherwise the backbone
is randomly initialised and :attr:`LesionNet.backbone_source` says "random-init backbone", which every
result table carries.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from retina.common.errors import RetinaError

MIN_INPUT = 75
CUTS = (32, 16, 8, 4, 2)
# (output stride, Inception-v3 blocks that end at that stride, channels out)
_STAGES = (
    (2, ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3"), 64),
    (4, ("maxpool1", "Conv2d_3b_1x1", "Conv2d_4a_3x3"), 192),
    (8, ("maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d"), 288),
    (16, ("Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e"), 768),
    (32, ("Mixed_7a", "Mixed_7b", "Mixed_7c"), 2048),
)
RANDOM_INIT = "random-init backbone"


@dataclass
class LesionNetConfig:
    out_channels: int = 2
    cut: int = 16  # Lesion-Net-16s is the paper's choice for the multi-task network (Sec. IV-C)


def load_inception_weights(weights_dir: str | Path | None) -> tuple[dict[str, torch.Tensor] | None, str]:
    """ImageNet Inception-v3 weights from the weights registry, or ``(None, RANDOM_INIT)`` when the user has
    not supplied them (the registry's message says which file to fetch)."""
    try:
        from retina.eval.weights import find_weights
    except ImportError:
        return None, RANDOM_INIT
    try:
        path = find_weights("inception_v3", weights_dir)
    except RetinaError:
        return None, RANDOM_INIT
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state, f"ImageNet inception_v3 ({Path(path).name})"


class LesionNet(nn.Module):
    def __init__(self, config: LesionNetConfig | None = None, backbone_state: dict | None = None,
                 backbone_source: str = RANDOM_INIT):
        super().__init__()
        from torchvision.models import inception_v3

        self.config = c = config or LesionNetConfig()
        if c.cut not in CUTS:
            raise RetinaError(f"Lesion-Net cut {c.cut}s is not one of {', '.join(f'{k}s' for k in CUTS)}")
        # init_weights=False skips scipy's truncated-normal init (slow, and scipy may be absent).
        backbone = inception_v3(weights=None, aux_logits=False, init_weights=False, transform_input=False)
        if backbone_state is not None:
            missing = backbone.load_state_dict(backbone_state, strict=False).missing_keys
            if any(not key.startswith("AuxLogits") for key in missing):
                raise RetinaError(f"inception_v3 weights lack {len(missing)} tensors; re-fetch the file")
        self.backbone_source = backbone_source if backbone_state is not None else RANDOM_INIT
        self.stages = nn.ModuleList()
        self.scores = nn.ModuleList()
        self.strides: list[int] = []
        for stride, names, channels in _STAGES:
            self.stages.append(nn.Sequential(*(getattr(backbone, name) for name in names)))
            if stride >= c.cut:
                self.scores.append(nn.Conv2d(channels, c.out_channels, 1))
                self.strides.append(stride)
            else:
                self.scores.append(nn.Identity())

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """``image`` (B, 3, S, S) in [-1, 1] (Inception's own input range) -> logits (B, C, S, S)."""
        if min(image.shape[-2:]) < MIN_INPUT:
            raise RetinaError(f"Lesion-Net (Inception-v3) needs inputs of at least {MIN_INPUT} px, got "
                              f"{tuple(image.shape[-2:])}; use --res {MIN_INPUT} or more, or --model unet")
        features = []
        x = image
        for stride, stage in zip((s for s, _, _ in _STAGES), self.stages, strict=True):
            x = stage(x)
            features.append((stride, x))
        score = None
        for (stride, feature), head in reversed(list(zip(features, self.scores, strict=True))):
            if stride < self.config.cut:
                break
            local = head(feature)
            if score is not None:
                local = local + F.interpolate(score, size=local.shape[-2:], mode="bilinear", align_corners=False)
            score = local
        return F.interpolate(score, size=image.shape[-2:], mode="bilinear", align_corners=False)

    def probabilities(self, image: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self(image))
