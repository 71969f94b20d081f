"""Adaptive grading manipulation (DR-GAN section III-D).

1. A grading network (torchvision ResNet-50; ImageNet weights only when the user supplies them) is trained
   on the real images' grades.
2. Its pooled features of the training images give one Gaussian per grade (:class:`GradingSpace`):
   mean and covariance, or a diagonal covariance. A full 2048 x 2048 covariance per grade is mostly noise
   with a few hundred images, so ``full`` keeps the top ``rank`` principal directions plus an isotropic
   floor (the residual variance), which also keeps the checkpoint small.
3. A grading vector sampled from the grade's Gaussian goes through a 4-layer mapping network (after
   StyleGAN) to the style from which every synthesis block's AdaIN takes its scale and bias.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from retina.common.errors import RetinaError
from retina.common.imagenet import imagenet_normalise
from retina.common.schema import NUM_GRADES


def build_grader(arch: str = "resnet50", weights_dir: str | Path | None = None, pretrained: bool = False) -> nn.Module:
    """A grading classifier whose ``.fc`` maps pooled features to NUM_GRADES logits.

    ``pretrained`` loads ImageNet weights through the weights registry (sha256-checked, ``weights_only``);
    tests and quick CPU runs use ``arch="tiny"``: a 4-block BasicBlock ResNet (512 features).
    """
    from torchvision.models import resnet50
    from torchvision.models.resnet import BasicBlock, ResNet

    if arch == "tiny":
        model = ResNet(BasicBlock, [1, 1, 1, 1], num_classes=NUM_GRADES)
        return model
    if arch != "resnet50":
        raise RetinaError(f"grader '{arch}': use resnet50 or tiny")
    model = resnet50()
    if pretrained:
        from retina.eval.weights import find_weights

        path = find_weights("resnet50", weights_dir)
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    model.fc = nn.Linear(model.fc.in_features, NUM_GRADES)
    return model


def grader_features(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Pooled penultimate features (B, D) of a torchvision ResNet for images in [-1, 1]."""
    x = imagenet_normalise(images)
    x = model.maxpool(model.relu(model.bn1(model.conv1(x))))
    x = model.layer4(model.layer3(model.layer2(model.layer1(x))))
    return torch.flatten(model.avgpool(x), 1)


class GradingSpace(nn.Module):
    """Per-grade Gaussians over grading features; buffers travel in the checkpoint (prefix ``space.``)."""

    def __init__(self, dim: int, rank: int = 64, diagonal: bool = False):
        super().__init__()
        self.dim, self.rank, self.diagonal = dim, rank, diagonal
        self.register_buffer("mean", torch.zeros(NUM_GRADES, dim))
        # full: cov = factor @ factor.T + floor * I ; diag: cov = diag(factor[:, :, 0] ** 2)
        self.register_buffer("factor", torch.zeros(NUM_GRADES, dim, 1 if diagonal else rank))
        self.register_buffer("floor", torch.ones(NUM_GRADES))
        self.register_buffer("count", torch.zeros(NUM_GRADES, dtype=torch.long))
        # global standardisation of the features before the mapping network
        self.register_buffer("feature_mean", torch.zeros(dim))
        self.register_buffer("feature_std", torch.ones(dim))

    @torch.no_grad()
    def fit(self, features: torch.Tensor, grades: torch.Tensor) -> None:
        """Fit each grade's Gaussian; a grade with fewer than 2 images falls back to all images'."""
        features = features.float().cpu()
        grades = grades.cpu()
        if len(features) < 2:
            raise RetinaError("fitting the grading space needs at least 2 graded images")
        self.feature_mean.copy_(features.mean(0))
        self.feature_std.copy_(features.std(0).clamp_min(1e-6))
        for grade in range(NUM_GRADES):
            subset = features[grades == grade]
            self.count[grade] = len(subset)
            if len(subset) < 2:
                subset = features
            mean = subset.mean(0)
            centred = subset - mean
            self.mean[grade] = mean
            if self.diagonal:
                self.factor[grade, :, 0] = centred.pow(2).sum(0).div(len(subset) - 1).sqrt()
                self.floor[grade] = 0.0
                continue
            _, singular, vh = torch.linalg.svd(centred, full_matrices=False)
            variances = singular.pow(2) / (len(subset) - 1)
            kept = min(self.rank, len(variances))
            total = centred.pow(2).sum() / (len(subset) - 1)
            residual = (total - variances[:kept].sum()).clamp_min(0) / max(1, self.dim - kept)
            self.factor[grade].zero_()
            self.factor[grade, :, :kept] = vh[:kept].T * variances[:kept].sqrt()
            self.floor[grade] = residual + 1e-6

    def covariance(self, grade: int) -> torch.Tensor:
        factor = self.factor[grade]
        if self.diagonal:
            return torch.diag(factor[:, 0] ** 2)
        return factor @ factor.T + self.floor[grade] * torch.eye(self.dim, device=factor.device)

    def sample(self, grades: torch.Tensor, generators: list[torch.Generator] | None = None) -> torch.Tensor:
        """One grading vector per grade (B,), standardised; per-sample generators make each reproducible."""
        device = self.mean.device
        rows = []
        for i, grade in enumerate(grades.tolist()):
            g = generators[i] if generators is not None else None
            factor = self.factor[grade]
            e = torch.randn(factor.shape[1], generator=g, device=device)
            z = self.mean[grade] + factor @ e if not self.diagonal else self.mean[grade] + factor[:, 0] * e
            if not self.diagonal:
                z = z + self.floor[grade].sqrt() * torch.randn(self.dim, generator=g, device=device)
            rows.append(z)
        return self.standardise(torch.stack(rows))

    def standardise(self, features: torch.Tensor) -> torch.Tensor:
        return (features - self.feature_mean) / self.feature_std


class MappingNetwork(nn.Module):
    """Four fully connected layers with LeakyReLU 0.2 (StyleGAN's mapping network, cited as [36])."""

    def __init__(self, in_dim: int, style_dim: int = 256, layers: int = 4):
        super().__init__()
        blocks: list[nn.Module] = []
        for i in range(layers):
            blocks += [nn.Linear(in_dim if i == 0 else style_dim, style_dim), nn.LeakyReLU(0.2)]
        self.net = nn.Sequential(*blocks)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)
