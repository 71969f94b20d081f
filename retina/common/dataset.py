"""A torch ``Dataset`` over the canonical format, with augmentation that moves image and masks together."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from retina.common.canonical import CanonicalDataset, Sample
from retina.common.errors import RetinaError


@dataclass
class AugmentConfig:
    flip: float = 0.5  # probability of a horizontal flip (left/right eye swap)
    rotation: float = 15.0  # degrees, uniform in +-rotation
    scale: tuple[float, float] = (0.95, 1.05)
    brightness: float = 0.1  # colour jitter, image only
    contrast: float = 0.1
    saturation: float = 0.1
    hue: float = 0.02


def resize_masks(masks: torch.Tensor, size: int) -> torch.Tensor:
    """Resize binary masks (..., H, W) keeping thin and tiny structures: area pooling down, then > 0 wins.

    Nearest-neighbour would drop a 3-pixel microaneurysm at 1/4 scale; max pooling keeps it.
    """
    height, width = masks.shape[-2:]
    if (height, width) == (size, size):
        return masks
    if masks.dim() == 4 and height == width and height % size == 0:
        # an exact factor: the same max pooling, without flattening the planes (a copy under channels_last)
        return F.max_pool2d(masks.float(), height // size)
    flat = masks.reshape(-1, 1, height, width).float()
    if height >= size and width >= size:
        resized = F.adaptive_max_pool2d(flat, (size, size))
    else:
        resized = (F.interpolate(flat, size=(size, size), mode="bilinear", align_corners=False) >= 0.5).float()
    return resized.reshape(*masks.shape[:-2], size, size)


def resize_image(image: torch.Tensor, size: int) -> torch.Tensor:
    """Resize a float image (..., 3, H, W) with antialiasing."""
    if image.shape[-2:] == (size, size):
        return image
    flat = image.reshape(-1, *image.shape[-3:])
    out = F.interpolate(flat, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return out.reshape(*image.shape[:-2], size, size)


class PairedAugment(torch.nn.Module):
    """Random flip/rotation/scale applied identically to image and masks; colour jitter to the image only."""

    def __init__(self, config: AugmentConfig | None = None):
        super().__init__()
        import kornia.augmentation as K

        self.config = config or AugmentConfig()
        c = self.config
        self.geometry = K.AugmentationSequential(
            K.RandomHorizontalFlip(p=c.flip),
            K.RandomAffine(degrees=c.rotation, scale=c.scale, p=1.0, padding_mode="zeros"),
            data_keys=["input", "mask"],
        )
        self.colour = K.ColorJitter(c.brightness, c.contrast, c.saturation, c.hue, p=1.0)

    def forward(self, image: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``image`` (B, 3, H, W) in [0, 1]; ``masks`` (B, C, H, W) in {0, 1}."""
        image, masks = self.geometry(image, masks)
        image = self.colour(image).clamp(0, 1)
        return image, (masks > 0.5).float()


class FundusDataset(Dataset):
    """Items are dicts: ``image`` (3, S, S) in [-1, 1], ``masks`` (C, S, S) in {0, 1}, ``grade``, ``name``.

    ``channels`` picks and orders the mask channels (default: every channel of the schema that the data set
    has). Asking for a channel the data set lacks is an error, never silent zeros. ``with_images=False``
    serves masks-only (layout) sets. ``samples`` (rows of this set, e.g. from
    :func:`retina.common.split.training_rows`) wins over ``split``.
    """

    def __init__(
        self,
        root: str | Path | CanonicalDataset,
        size: int,
        channels: Sequence[str] | None = None,
        split: str | None = None,
        augment: AugmentConfig | None = None,
        with_images: bool = True,
        with_masks: bool = True,
        samples: Sequence[Sample] | None = None,
    ):
        self.index = CanonicalDataset(root) if not isinstance(root, CanonicalDataset) else root
        self.size = size
        self.channels = tuple(self.index.channels if channels is None else channels)
        if with_masks:
            self.index.require_channels(self.channels, "this data set's masks")
        if with_images:
            self.index.require_images("training on photographs")
        if samples is not None:
            self.samples = list(samples)
        else:
            self.samples = self.index.samples if split is None else self.index.subset(split)
        if not self.samples:
            raise RetinaError(f"{self.index.root}: no samples in split '{split}'")
        if with_images and with_masks:
            self.index.require_matching_sizes([s.name for s in self.samples], self.channels)
        self.with_images, self.with_masks = with_images, with_masks
        self.augment = PairedAugment(augment) if augment is not None else None

    @property
    def channel_names(self) -> tuple[str, ...]:
        return self.channels

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict:
        sample = self.samples[i]
        item: dict = {"name": sample.name, "grade": -1 if sample.grade is None else sample.grade}
        image = masks = None
        if self.with_images:
            array = self.index.load_image(sample.name)
            image = resize_image(torch.from_numpy(array).permute(2, 0, 1).float() / 255.0, self.size)
        if self.with_masks and self.channels:
            stack = torch.from_numpy(self.index.load_masks(sample.name, self.channels).astype(np.float32))
            masks = resize_masks(stack, self.size)
        if self.augment is not None:
            image_in = image[None] if image is not None else torch.zeros(1, 3, self.size, self.size)
            masks_in = masks[None] if masks is not None else torch.zeros(1, 0, self.size, self.size)
            image_out, masks_out = self.augment(image_in, masks_in)
            image = image_out[0] if image is not None else None
            masks = masks_out[0] if masks is not None else None
        if image is not None:
            item["image"] = image * 2 - 1
        if masks is not None:
            item["masks"] = masks
        return item
