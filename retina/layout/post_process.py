"""What every sampled layout goes through unless ``--raw``: exactly one plausible optic disc, rooted in the vessel
tree (:mod:`retina.layout.optic_disc`), a field of view without holes, and nothing drawn outside that field.

GAN layouts need all three: the raw StyleGAN trained on IDRiD drew a second disc in 25-56 % of its layouts, 12 of
55 of its fields of view had a disc-sized hole (no real IDRiD field has one; a hole renders as a black patch
inside the fundus), and every one of its layouts had lesion specks in the black corners, where no real mask has
any. Each step leaves a layout that needs none of it unchanged (the procedural prior's, for one).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from retina.layout.optic_disc import enforce_single_optic_disc


def fill_field_of_view(masks: np.ndarray, channels: Sequence[str]) -> tuple[np.ndarray, bool]:
    """Fill the holes of the ``fov`` channel of one layout (C, H, W); return ``(masks, changed)``."""
    channels = tuple(channels)
    if "fov" not in channels:
        return masks, False
    index = channels.index("fov")
    field = masks[index].astype(bool)
    filled = ndimage.binary_fill_holes(field)
    if np.array_equal(filled, field):
        return masks, False
    out = masks.copy()
    out[index] = filled
    return out, True


def clip_to_field_of_view(masks: np.ndarray, channels: Sequence[str]) -> tuple[np.ndarray, bool]:
    """Clear every channel outside the ``fov`` channel (when the layout has a non-empty one)."""
    channels = tuple(channels)
    if "fov" not in channels:
        return masks, False
    field = masks[channels.index("fov")].astype(bool)
    if not field.any():
        return masks, False
    outside = ~field
    if not (masks[:, outside]).any():
        return masks, False
    out = masks.copy()
    out[:, outside] = False
    return out, True


def clean_layout(masks: np.ndarray, channels: Sequence[str], drawn: Sequence[str] | None = None
                 ) -> tuple[np.ndarray, bool]:
    """One layout (C, H, W) with one optic disc inside a solid field of view and nothing outside it; ``changed``
    if any step acted. The field is filled first, so that clipping never cuts into a hole. ``drawn``: the channels
    the layout model draws (default: all of ``channels``); a step for a channel it does not draw is skipped, since
    an empty disc channel of a model without discs is not a missing disc."""
    drawn = set(channels if drawn is None else drawn)
    field_filled = clipped = disc_fixed = False
    if "fov" in drawn:
        masks, field_filled = fill_field_of_view(masks, channels)
        masks, clipped = clip_to_field_of_view(masks, channels)
    if "od" in drawn:
        masks, disc_fixed = enforce_single_optic_disc(masks, channels)
    return masks, field_filled or clipped or disc_fixed
