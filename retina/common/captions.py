"""Text on preview tiles (sample grids of the trainers): which row is real, which grade a row was drawn for."""

from __future__ import annotations

import cv2
import numpy as np


def caption(tile: np.ndarray, text: str, short: str | None = None) -> np.ndarray:
    """A copy of ``tile`` (uint8 H x W x 3) with ``text`` in white on a dark band across its top; ``short`` is
    written instead when ``text`` does not fit the tile's width (small previews)."""
    out = np.ascontiguousarray(tile.copy())
    height = out.shape[0]
    scale = max(0.3, height / 256 * 0.6)
    thickness = max(1, round(height / 256))
    (width, text_height), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    if width + 6 > out.shape[1] and short:
        text = short
        (width, text_height), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    band = min(height, text_height + baseline + 4)
    out[:band, : min(out.shape[1], width + 6)] //= 3
    cv2.putText(out, text, (3, band - baseline - 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness,
                cv2.LINE_AA)
    return out
