"""A rough DR grade from lesion masks, for segmentation sets that ship none (``--estimate-grade``).

It is a heuristic in the spirit of the International Clinical DR scale, not a clinical grade, and every set that
uses it says so in dataset.json: no lesions -> 0; microaneurysms only -> 1; haemorrhages in all four quadrants
around the centre of the field of view with at least ``SEVERE_HAEMORRHAGES`` of them (a stand-in for the 4-2-1
rule's "more than 20 in each quadrant", which masks of squashed or cropped photographs cannot count reliably)
-> 3; neovascularisation -> 4; any other lesion -> 2.
"""

from __future__ import annotations

import cv2
import numpy as np

SEVERE_HAEMORRHAGES = 20
PROVENANCE_NOTE = "grade estimated from lesion masks, not clinical"


def _centroids(mask: np.ndarray) -> np.ndarray:
    count, _, _, centroids = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    return centroids[1:count]


def estimate_grade(masks: dict[str, np.ndarray]) -> int:
    """``masks``: channel -> ``bool (H, W)``; channels the source lacks are simply absent."""

    def present(channel: str) -> bool:
        return channel in masks and bool(masks[channel].any())

    if present("nv"):
        return 4
    others = [c for c in ("he", "ex", "se", "laser", "fp") if present(c)]
    if not others:
        return 1 if present("ma") else 0
    if present("he"):
        centres = _centroids(masks["he"])
        height, width = masks["he"].shape
        if "fov" in masks and masks["fov"].any():
            rows, cols = np.nonzero(masks["fov"])
            cy, cx = rows.mean(), cols.mean()
        else:
            cy, cx = height / 2, width / 2
        quadrants = {(bool(x >= cx), bool(y >= cy)) for x, y in centres}
        if len(centres) >= SEVERE_HAEMORRHAGES and len(quadrants) == 4:
            return 3
    return 2
