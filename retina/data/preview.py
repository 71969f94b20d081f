"""``retina data preview``: a contact sheet of a data set, one row per grade, masks overlaid in schema colours."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from retina.common.canonical import CanonicalDataset
from retina.common.errors import RetinaError
from retina.common.imageio import write_png
from retina.common.schema import CHANNELS

MIN_CELL, MAX_CELL = 96, 256
MARGIN = 64  # left margin for the grade label
LEGEND_HEIGHT = 22
WHITE = (255, 255, 255)


def _fit(array: np.ndarray, cell: int, binary: bool) -> np.ndarray:
    if array.shape[:2] == (cell, cell):
        return array
    if binary:
        # Area-average then "any coverage": small lesions stay visible when the cell is smaller than the image.
        resized = cv2.resize(array.astype(np.float32), (cell, cell), interpolation=cv2.INTER_AREA)
        return resized > 0
    return cv2.resize(array, (cell, cell), interpolation=cv2.INTER_AREA if array.shape[0] > cell else cv2.INTER_LINEAR)


def overlay(image: np.ndarray | None, masks: dict[str, np.ndarray], cell: int, alpha: float) -> np.ndarray:
    """One tile: the photograph (or black) with every mask channel blended in its preview colour."""
    if image is None:
        tile = np.zeros((cell, cell, 3), np.float32)
    else:
        tile = _fit(image, cell, binary=False).astype(np.float32)
    for channel in CHANNELS:
        if channel.name not in masks:
            continue
        if channel.name == "fov" and image is not None:
            continue  # the photograph already shows its field of view
        mask = _fit(masks[channel.name], cell, binary=True)
        weight = 1.0 if image is None else alpha
        tile[mask] = (1 - weight) * tile[mask] + weight * np.array(channel.color, np.float32)
    return tile.clip(0, 255).astype(np.uint8)


def _label(canvas: np.ndarray, text: str, x: int, y: int, colour: tuple[int, int, int] = WHITE) -> int:
    cv2.putText(canvas, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, 0.4, colour, 1, cv2.LINE_AA)
    return cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)[0][0]


def write_preview(root: str | Path, out: str | Path, per_grade: int = 4,
                  alpha: float = 0.5) -> tuple[Path, int, list[str]]:
    """Write the grid to ``out`` (PNG); returns the path, the number of images shown and the skipped names."""
    if per_grade < 1:
        raise RetinaError(f"--per-grade {per_grade}: show at least one image per grade")
    if not 0 <= alpha <= 1:
        raise RetinaError(f"--alpha {alpha} must lie in [0, 1]")
    out = Path(out)
    if out.suffix.lower() != ".png":
        raise RetinaError(f"{out}: the preview is a PNG file; give --out NAME.png")
    data = CanonicalDataset(root)
    if not data.has_images and not data.channels:
        raise RetinaError(f"{data.root}: neither images/ nor masks/ present; nothing to preview")
    cell = int(np.clip(data.resolution or MAX_CELL, MIN_CELL, MAX_CELL))
    rows: dict[str, list[np.ndarray]] = {}
    skipped: list[str] = []
    order = sorted({s.grade for s in data.samples}, key=lambda g: (g is None, g or 0))
    for grade in order:
        key = "?" if grade is None else str(grade)
        tiles = rows.setdefault(key, [])
        for sample in (s for s in data.samples if s.grade == grade):
            if len(tiles) >= per_grade:
                break
            try:  # a damaged file is skipped here; `retina data inspect` lists it
                image = data.load_image(sample.name) if data.has_images else None
                stack = data.load_masks(sample.name) if data.channels else None
            except RetinaError:
                skipped.append(sample.name)
                continue
            masks = {} if stack is None else dict(zip(data.channels, stack, strict=True))
            tiles.append(overlay(image, masks, cell, alpha))
    shown = sum(len(t) for t in rows.values())
    if shown == 0:
        raise RetinaError(f"{data.root}: no readable sample to preview; run `retina data inspect {data.root}`")

    width = MARGIN + per_grade * cell
    canvas = np.zeros((len(rows) * cell + LEGEND_HEIGHT, width, 3), np.uint8)
    for row, (key, tiles) in enumerate(rows.items()):
        top = row * cell
        _label(canvas, f"grade {key}", 4, top + cell // 2)
        for column, tile in enumerate(tiles):
            left = MARGIN + column * cell
            canvas[top:top + cell, left:left + cell] = tile
    x, y = 4, len(rows) * cell + 15
    for channel in CHANNELS:
        if channel.name in data.channels and x < width - 20:
            x += _label(canvas, channel.name, x, y, channel.color) + 8
    write_png(out, canvas)
    return out, shown, skipped
