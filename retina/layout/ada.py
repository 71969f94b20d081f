"""Adaptive discriminator augmentation (Karras et al. 2020, "Training GANs with limited data").

Every image shown to D, real or fake, goes through the same differentiable pipeline, each transform applied
with probability p per sample: x-flip, rotation/scale/translation (kornia RandomAffine), cutout
(kornia RandomErasing) and additive Gaussian noise. Masks are augmented in [0, 1] so padding and cutout fill
with background. p is tuned from the overfitting heuristic r_t = E[sign(D(real))]: every ``interval``
D steps, p moves by sign(r_t - target) * (images seen) / (kimg * 1000), clamped to [0, 1] (sec. 3).
"""

from __future__ import annotations

import torch
from torch import nn

from retina.common.distributed import DistributedContext


class AdaptiveAugment(nn.Module):
    def __init__(self, target: float = 0.6, interval: int = 4, kimg: float = 500.0, p: float = 0.0):
        super().__init__()
        import kornia.augmentation as K

        self.target, self.interval, self.kimg, self.p = target, interval, kimg, float(p)
        self.pipeline = nn.ModuleList([
            K.RandomHorizontalFlip(p=0.0),
            K.RandomAffine(degrees=15.0, translate=(0.125, 0.125), scale=(0.8, 1.25), p=0.0, padding_mode="zeros"),
            K.RandomErasing(scale=(0.02, 0.2), ratio=(0.3, 3.3), value=0.0, p=0.0),
            K.RandomGaussianNoise(mean=0.0, std=0.1, p=0.0),
        ])
        self._sign_sum = 0.0
        self._count = 0
        self.last_rt = 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Augment ``x`` (B, C, H, W) in [0, 1]; identity (and no random draws) while p == 0."""
        if self.p <= 0.0:
            return x
        for transform in self.pipeline:
            transform.p = self.p
            x = transform(x)
        return x

    def accumulate(self, real_logits: torch.Tensor) -> None:
        self._sign_sum += float(torch.sign(real_logits.detach().float()).sum())
        self._count += real_logits.numel()

    def update(self, images_seen: int, context: DistributedContext | None = None) -> float:
        """Adjust p from the signs accumulated since the last update; returns r_t."""
        totals = torch.tensor([self._sign_sum, float(self._count)], dtype=torch.float64)
        if context is not None and context.enabled:
            import torch.distributed as dist

            dist.all_reduce(totals)
        self._sign_sum, self._count = 0.0, 0
        if totals[1] == 0:
            return self.last_rt
        self.last_rt = float(totals[0] / totals[1])
        step = images_seen / (self.kimg * 1000.0)
        direction = 1.0 if self.last_rt > self.target else -1.0 if self.last_rt < self.target else 0.0
        self.p = min(1.0, max(0.0, self.p + direction * step))
        return self.last_rt

    def state(self) -> dict:
        return {"p": self.p, "sign_sum": self._sign_sum, "count": self._count, "last_rt": self.last_rt}

    def load_state(self, state: dict) -> None:
        self.p = float(state["p"])
        self._sign_sum, self._count = float(state["sign_sum"]), int(state["count"])
        self.last_rt = float(state["last_rt"])
