"""Resize photographs and masks for import, and count what downscaling lost from each mask channel.

Masks go through :func:`retina.common.dataset.resize_masks` (max pooling when shrinking), so a lesion shrinks to at
least one pixel instead of vanishing; the accounting here proves it on every import: a source pixel is *lost* when
the output pixel it falls into is background, a source instance (8-connected component) is lost when all its
pixels are.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np
import torch

from retina.common.dataset import resize_image, resize_masks


@dataclass
class MaskLoss:
    """Per-channel totals over an import."""

    pixels_before: int = 0
    lost_pixels: int = 0
    instances_before: int = 0
    instances_after: int = 0
    lost_instances: int = 0
    # Output foreground in source pixels: above pixels_before when max pooling grows lesions to a whole pixel.
    area_after: int = 0

    def __iadd__(self, other: MaskLoss) -> MaskLoss:
        for key, value in asdict(other).items():
            setattr(self, key, getattr(self, key) + value)
        return self

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def resize_photo(image: np.ndarray, size: int) -> np.ndarray:
    """``uint8 (H, W, 3)`` -> ``uint8 (size, size, 3)`` with antialiasing."""
    tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float()
    resized = resize_image(tensor, size).clamp(0, 255).round().to(torch.uint8)
    return resized.permute(1, 2, 0).numpy()


def stretch_to_aspect(
    image: np.ndarray, masks: dict[str, np.ndarray], fov: np.ndarray, aspect: tuple[int, int]
) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """Undo a squash: widen (or heighten) a photograph and its masks so that width/height is ``aspect``.

    Only ever enlarges one side, so no mask pixel is lost: masks are stretched nearest-neighbour (still binary,
    every lesion kept), the photograph bicubically.
    """
    height, width = image.shape[:2]
    target = aspect[0] / aspect[1]
    if abs(width / height - target) < 1e-3:
        return image, masks, fov
    new_w, new_h = (round(height * target), height) if width / height < target else (width, round(width / target))

    def stretch_mask(plane: np.ndarray) -> np.ndarray:
        return cv2.resize(plane.astype(np.uint8), (new_w, new_h), interpolation=cv2.INTER_NEAREST).astype(bool)

    photo = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_CUBIC)
    return photo, {c: stretch_mask(m) for c, m in masks.items()}, stretch_mask(fov)


def resize_mask_stack(stack: np.ndarray, size: int) -> np.ndarray:
    """``bool (C, H, W)`` -> ``bool (C, size, size)`` keeping tiny structures (max pooling when shrinking)."""
    # One channel at a time: a float copy of a full-resolution stack (IDRiD: 4288 px square) would take GBs.
    planes = [resize_masks(torch.from_numpy(np.ascontiguousarray(plane)).float(), size).numpy() > 0.5
              for plane in stack]
    return np.stack(planes) if planes else np.zeros((0, size, size), dtype=bool)


def _components(mask: np.ndarray) -> tuple[int, np.ndarray]:
    count, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    return count - 1, labels


def measure_loss(source: np.ndarray, resized: np.ndarray) -> MaskLoss:
    """Compare one source mask ``bool (H, W)`` with its resized version ``bool (S, S)``."""
    height, width = source.shape
    size = resized.shape[0]
    # The output pixel each source pixel falls into (nearest upsampling of the resized mask).
    rows = np.minimum(np.arange(height) * size // height, size - 1)
    cols = np.minimum(np.arange(width) * size // width, size - 1)
    kept = resized[rows[:, None], cols[None, :]]
    count, labels = _components(source)
    surviving = np.bincount(labels[source & kept], minlength=count + 1)[1:] if count else np.zeros(0)
    after, _ = _components(resized)
    return MaskLoss(
        pixels_before=int(source.sum()),
        lost_pixels=int((source & ~kept).sum()),
        instances_before=count,
        instances_after=after,
        lost_instances=int((surviving == 0).sum()),
        area_after=int(round(resized.sum() * height * width / (size * size))),
    )
