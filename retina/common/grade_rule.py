"""The one rule that reads a DR grade off lesion masks, for masks that come without a grade.

Used by the importers (``retina data import --estimate-grade``, for segmentation sets that ship no grade) and by
the procedural renderer (``retina render`` of masks with no grade). It is a heuristic in the spirit of the
International Clinical DR scale (Wilkinson et al. 2003), not a clinical grade; outputs graded by it say so
(``PROVENANCE_NOTE``):

- 4 (proliferative): neovascularisation or fibrous proliferation; laser photocoagulation scars too, since an eye
  lasered for DR is a treated PDR (or severe NPDR) eye and synthetic-data sets conventionally grade it 4.
- 3 (severe NPDR): haemorrhages in each of the four quadrants around the centre of the field of view, at least
  ``SEVERE_HAEMORRHAGES_PER_QUADRANT`` in each: a stand-in for the 4-2-1 rule's "more than 20 intraretinal
  haemorrhages in each of four quadrants" (venous beading and IRMA have no mask channel).
- 2 (moderate NPDR): any other lesion (haemorrhages, hard exudates, cotton-wool spots).
- 1 (mild NPDR): microaneurysms only.  0: no lesion.
"""

from __future__ import annotations

from collections.abc import Mapping

import cv2
import numpy as np

from retina.common.schema import CHANNEL_NAMES

# Haemorrhages counted as connected components, per quadrant. Far below the clinical 20 because masks at
# 64-256 px merge neighbouring haemorrhages into one component (and squashed or cropped photographs lose some):
# phantom severe NPDR (6-10 haemorrhages drawn per quadrant) keeps >= 3 components in every quadrant at 128 and
# 256 px, whereas moderate NPDR (1-8 haemorrhages in all) never has more than 1 in its emptiest quadrant.
SEVERE_HAEMORRHAGES_PER_QUADRANT = 3
PROLIFERATIVE_CHANNELS = ("nv", "fp", "laser")
MODERATE_CHANNELS = ("he", "ex", "se")
PROVENANCE_NOTE = "grade estimated from lesion masks, not clinical"


def haemorrhages_per_quadrant(haemorrhages: np.ndarray, fov: np.ndarray | None = None) -> list[int]:
    """Connected haemorrhage components whose centre lies in each quadrant around the field of view's centre
    (the image centre without a field of view): [top-left, top-right, bottom-left, bottom-right]."""
    count, _, _, centroids = cv2.connectedComponentsWithStats(haemorrhages.astype(np.uint8), connectivity=8)
    if fov is not None and fov.any():
        rows, cols = np.nonzero(fov)
        cy, cx = rows.mean(), cols.mean()
    else:
        cy, cx = (haemorrhages.shape[0] - 1) / 2, (haemorrhages.shape[1] - 1) / 2
    quadrants = [0, 0, 0, 0]
    for x, y in centroids[1:count]:
        quadrants[2 * int(y >= cy) + int(x >= cx)] += 1
    return quadrants


def grade_from_masks(masks: Mapping[str, np.ndarray]) -> int:
    """``masks``: channel name -> ``bool (H, W)``; channels a source lacks are simply absent (= no such lesion)."""

    def present(channel: str) -> bool:
        return channel in masks and bool(masks[channel].any())

    if any(present(c) for c in PROLIFERATIVE_CHANNELS):
        return 4
    if present("he"):
        quadrants = haemorrhages_per_quadrant(masks["he"], masks.get("fov"))
        if min(quadrants) >= SEVERE_HAEMORRHAGES_PER_QUADRANT:
            return 3
    if any(present(c) for c in MODERATE_CHANNELS):
        return 2
    return 1 if present("ma") else 0


def grade_from_stack(stack: np.ndarray) -> int:
    """:func:`grade_from_masks` for a full ``(NUM_CHANNELS, H, W)`` stack in ``CHANNEL_NAMES`` order."""
    if stack.ndim != 3 or stack.shape[0] != len(CHANNEL_NAMES):
        raise ValueError(f"a mask stack must be ({len(CHANNEL_NAMES)}, H, W), got {tuple(stack.shape)}")
    return grade_from_masks(dict(zip(CHANNEL_NAMES, stack.astype(bool), strict=True)))
