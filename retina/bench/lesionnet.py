"""Lesion-Net (Wei et al. 2020, Sec. III-A) and the FCN baseline it is compared with (Table II).

Both share a torchvision Inception-v3 contracting path, split into the stages that end at output strides
2, 4, 8, 16 and 32 (64, 192, 288, 768 and 2048 channels), and an expansive path that can be cut at
32s/16s/8s/4s/2s (FCN naming: Lesion-Net-16s re-uses the 32s and 16s feature maps, Lesion-Net-2s all five).

* :class:`LesionNet` (``--model lesionnet``, the paper's): U-Net's copy-and-merge. Going up one stage, a 1x1
  convolution adjusts the number of feature maps (to the skip's channel count, the job of U-Net's
  up-convolution) and parameter-free bilinear interpolation enlarges them to the skip's size; the result is
  *concatenated* with the contracting path's feature map of that stage and merged by U-Net's two 3x3
  convolutions (BatchNorm + ReLU). A last 1x1 convolution gives one map per lesion, bilinearly up-sampled
  from the cut's stride to the input size; a sigmoid turns it into probabilities. There is no stage at full
  resolution ("1s"): the finest cut, 2s, stops at the Inception stem's first feature map.
* :class:`LesionNetFCN` (``--model lesionnet-fcn``): FCN's score maps. Each kept stage gets a 1x1 score
  convolution to one map per lesion; from the coarsest, the running score map is bilinearly up-sampled to
  the next stage and *added*.

Why merge convolutions: a 1x1 convolution of a concatenation is the sum of 1x1 convolutions of its parts, and
1x1 convolutions commute with bilinear interpolation, so concatenation followed only by 1x1 convolutions would
be FCN's adding in disguise. U-Net's 3x3 convolutions with their non-linearity are what make the merge learn
from both inputs jointly.

Minimum input: Inception-v3 uses unpadded convolutions, so its 32s stage needs an input of at least 75 x 75
pixels (:data:`MIN_INPUT`); smaller inputs are rejected with that message. ``forward`` takes images in
[-1, 1] and returns logits; :meth:`probabilities` applies the sigmoid.

ImageNet weights come from the weights registry (``retina.eval.weights.find_weights("inception_v3",
weights_dir)``, sha256-checked, ``torch.load(weights_only=True)``) when the file is there. Otherwise the
backbone is randomly initialised and ``backbone_source`` says "random-init backbone", which every result
table carries.
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
STAGE_CHANNELS = {stride: channels for stride, _, channels in _STAGES}
RANDOM_INIT = "random-init backbone"


@dataclass
class LesionNetConfig:
    out_channels: int = 2
    cut: int = 16  # Lesion-Net-16s is the paper's choice for the multi-task network (Sec. IV-C)
    merge_convs: int = 2  # U-Net's two 3x3 convolutions after each concatenation (Lesion-Net only)


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


class _InceptionContracting(nn.Module):
    """The contracting path shared by both variants: Inception-v3's blocks grouped by output stride."""

    def __init__(self, config: LesionNetConfig, backbone_state: dict | None, backbone_source: str):
        super().__init__()
        from torchvision.models import inception_v3

        self.config = config
        if config.cut not in CUTS:
            raise RetinaError(f"Lesion-Net cut {config.cut}s is not one of {', '.join(f'{k}s' for k in CUTS)}")
        # init_weights=False skips scipy's truncated-normal init (slow, and scipy may be absent).
        backbone = inception_v3(weights=None, aux_logits=False, init_weights=False, transform_input=False)
        if backbone_state is not None:
            missing = backbone.load_state_dict(backbone_state, strict=False).missing_keys
            if any(not key.startswith("AuxLogits") for key in missing):
                raise RetinaError(f"inception_v3 weights lack {len(missing)} tensors; re-fetch the file")
        self.backbone_source = backbone_source if backbone_state is not None else RANDOM_INIT
        self.stages = nn.ModuleList(nn.Sequential(*(getattr(backbone, name) for name in names))
                                    for _, names, _ in _STAGES)
        # Kept stages, coarsest first: 32s, then down to the cut.
        self.strides = [stride for stride, _, _ in reversed(_STAGES) if stride >= config.cut]

    def features(self, image: torch.Tensor) -> dict[int, torch.Tensor]:
        """Feature maps by output stride."""
        if min(image.shape[-2:]) < MIN_INPUT:
            raise RetinaError(f"Lesion-Net (Inception-v3) needs inputs of at least {MIN_INPUT} px, got "
                              f"{tuple(image.shape[-2:])}; use --res {MIN_INPUT} or more, or --model unet")
        features = {}
        x = image
        for (stride, _, _), stage in zip(_STAGES, self.stages, strict=True):
            x = stage(x)
            features[stride] = x
        return features

    def probabilities(self, image: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self(image))


def _merge_block(channels_in: int, channels_out: int, convs: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(convs):
        layers += [nn.Conv2d(channels_in if i == 0 else channels_out, channels_out, 3, padding=1, bias=False),
                   nn.BatchNorm2d(channels_out), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class LesionNet(_InceptionContracting):
    """The paper's Lesion-Net-Ns: copy-and-merge (concatenation) expansive path cut at ``config.cut``."""

    def __init__(self, config: LesionNetConfig | None = None, backbone_state: dict | None = None,
                 backbone_source: str = RANDOM_INIT):
        config = config or LesionNetConfig()
        super().__init__(config, backbone_state, backbone_source)
        if config.merge_convs < 1:
            raise RetinaError("Lesion-Net needs at least one merge convolution (see the module docstring)")
        self.reduce = nn.ModuleList()  # 1x1 "up" convolutions, one per skip
        self.merge = nn.ModuleList()
        channels = STAGE_CHANNELS[32]
        for stride in self.strides[1:]:
            skip = STAGE_CHANNELS[stride]
            self.reduce.append(nn.Conv2d(channels, skip, 1))
            self.merge.append(_merge_block(2 * skip, skip, config.merge_convs))
            channels = skip
        self.head = nn.Conv2d(channels, config.out_channels, 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """``image`` (B, 3, S, S) in [-1, 1] (Inception's own input range) -> logits (B, C, S, S)."""
        features = self.features(image)
        x = features[32]
        for stride, reduce, merge in zip(self.strides[1:], self.reduce, self.merge, strict=True):
            skip = features[stride]
            up = F.interpolate(reduce(x), size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = merge(torch.cat([up, skip], dim=1))
        return F.interpolate(self.head(x), size=image.shape[-2:], mode="bilinear", align_corners=False)


class LesionNetFCN(_InceptionContracting):
    """FCN-Ns on Inception-v3 (Long et al.; the paper's FCN baseline): per-stage score maps, added."""

    def __init__(self, config: LesionNetConfig | None = None, backbone_state: dict | None = None,
                 backbone_source: str = RANDOM_INIT):
        config = config or LesionNetConfig()
        super().__init__(config, backbone_state, backbone_source)
        self.scores = nn.ModuleList(nn.Conv2d(STAGE_CHANNELS[s], config.out_channels, 1) for s in self.strides)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        features = self.features(image)
        score = None
        for stride, head in zip(self.strides, self.scores, strict=True):
            local = head(features[stride])
            if score is not None:
                local = local + F.interpolate(score, size=local.shape[-2:], mode="bilinear", align_corners=False)
            score = local
        return F.interpolate(score, size=image.shape[-2:], mode="bilinear", align_corners=False)
