"""Segmentation losses: pixel Dice, image Dice and Lesion-Net's dual Dice loss (Wei et al. 2020, Eqs. 2-4)."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F

EPSILON = 1e-6


def pixel_dice_loss(probabilities: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Eq. 3: ``1 - 2 sum(p t) / (sum p^2 + sum t^2)`` over every pixel, lesion and image of the batch.

    MONAI's ``DiceLoss`` with squared terms, on everything flattened into one sample of one channel, which is
    exactly the equation's single sum over pixels, lesions and images.
    """
    return _squared_dice()(probabilities.reshape(1, 1, -1), targets.reshape(1, 1, -1).to(probabilities.dtype))


@functools.cache
def _squared_dice():
    from monai.losses import DiceLoss

    return DiceLoss(squared_pred=True, smooth_nr=EPSILON, smooth_dr=EPSILON)


def image_dice_loss(probabilities: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Eq. 4: the Dice loss on image-level presence, obtained by global max pooling of maps and labels,
    so it is invariant to lesion size."""
    image_p = probabilities.flatten(2).amax(dim=2)
    image_t = targets.flatten(2).amax(dim=2)
    return pixel_dice_loss(image_p, image_t)


def dual_dice_loss(probabilities: torch.Tensor, targets: torch.Tensor, weight: float = 0.8) -> torch.Tensor:
    """Eq. 2: ``weight * pixel Dice + (1 - weight) * image Dice``; weight λ = 0.8 (Sec. III-A)."""
    return weight * pixel_dice_loss(probabilities, targets) + (1 - weight) * image_dice_loss(probabilities, targets)


@dataclass
class SegmentationLoss:
    """The training loss with Lesion-Net's schedule (Sec. IV-A, Implementations): training starts with the
    pixel Dice loss and switches to the dual loss once the learning rate is reduced. Our trainers reduce the
    learning rate at ``switch_fraction`` of the epochs, so the switch happens there.

    ``kind``: "dual" (that schedule), "dice" (pixel Dice throughout) or "bce" (binary cross-entropy).
    """

    kind: str = "dual"
    weight: float = 0.8  # λ, Lesion-Net Sec. III-A
    switch_fraction: float = 0.5
    dual_active: bool = False

    def __post_init__(self) -> None:
        if self.kind not in ("dual", "dice", "bce"):
            raise ValueError(f"unknown loss '{self.kind}'; use dual, dice or bce")

    def start_epoch(self, epoch: int, epochs: int) -> None:
        self.dual_active = self.kind == "dual" and epoch >= max(1, round(self.switch_fraction * epochs))

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if self.kind == "bce":
            return F.binary_cross_entropy_with_logits(logits, targets)
        probabilities = torch.sigmoid(logits)
        if self.dual_active:
            return dual_dice_loss(probabilities, targets, self.weight)
        return pixel_dice_loss(probabilities, targets)
