"""Field of view: find the bright disc of a fundus photograph, crop to it and pad to a square.

Cameras frame the retina differently (IDRiD cuts the disc at top and bottom, DRIVE leaves black margins at the
sides); cropping to the field of view and padding with black makes every imported set look alike before resizing.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage

# The black surround of a fundus photograph sits below ~10 in the red channel even after JPEG compression; the
# retina, whose red channel is its brightest, sits well above. A fraction of the bright end adapts to dark photos.
FOV_MIN_THRESHOLD = 10
FOV_RELATIVE_THRESHOLD = 0.08


def fov_from_image(image: np.ndarray) -> np.ndarray:
    """The field of view of a ``uint8 (H, W, 3)`` photograph as ``bool (H, W)``.

    Threshold on the red channel, keep the largest connected component and fill its holes (dark lesions or the
    macula inside the disc must not punch holes in it). A photograph with no bright region gets the whole frame.
    """
    red = image[..., 0] if image.ndim == 3 else image
    threshold = max(FOV_MIN_THRESHOLD, FOV_RELATIVE_THRESHOLD * float(np.percentile(red, 99)))
    bright = (red > threshold).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(bright, connectivity=8)
    if count <= 1:
        return np.ones(red.shape, dtype=bool)
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return ndimage.binary_fill_holes(labels == largest)


@dataclass(frozen=True)
class SquareCrop:
    """Crop box ``[top:bottom, left:right]`` in the source, then padding that centres it in a square."""

    top: int
    bottom: int
    left: int
    right: int
    pad_top: int
    pad_bottom: int
    pad_left: int
    pad_right: int

    @property
    def side(self) -> int:
        return self.bottom - self.top + self.pad_top + self.pad_bottom

    def apply(self, array: np.ndarray) -> np.ndarray:
        """Crop and pad an ``(H, W)`` or ``(H, W, C)`` array."""
        cropped = array[self.top:self.bottom, self.left:self.right]
        padding = [(self.pad_top, self.pad_bottom), (self.pad_left, self.pad_right)]
        padding += [(0, 0)] * (array.ndim - 2)
        return np.pad(cropped, padding)

    def apply_stack(self, stack: np.ndarray) -> np.ndarray:
        """Crop and pad a ``(C, H, W)`` stack of masks."""
        cropped = stack[:, self.top:self.bottom, self.left:self.right]
        return np.pad(cropped, [(0, 0), (self.pad_top, self.pad_bottom), (self.pad_left, self.pad_right)])


def square_crop(fov: np.ndarray) -> SquareCrop:
    """The bounding box of the field of view, padded (centred) to a square; the whole frame if ``fov`` is empty."""
    rows, cols = np.flatnonzero(fov.any(axis=1)), np.flatnonzero(fov.any(axis=0))
    if rows.size == 0:
        top, bottom, left, right = 0, fov.shape[0], 0, fov.shape[1]
    else:
        top, bottom, left, right = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    height, width = bottom - top, right - left
    side = max(height, width)
    pad_h, pad_w = side - height, side - width
    return SquareCrop(top, bottom, left, right, pad_h // 2, pad_h - pad_h // 2, pad_w // 2, pad_w - pad_w // 2)
