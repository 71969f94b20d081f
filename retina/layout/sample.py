"""Writing sampled layouts as a canonical data set: masks of the produced channels, ``labels.csv`` with grade,
seed, model and checkpoint hash, and ``preview.png`` (a colour-coded grid, one row per grade)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from retina.common.canonical import CanonicalWriter
from retina.common.imageio import write_png
from retina.common.progress import progress_bar, summary
from retina.common.schema import CHANNEL_INDEX, CHANNEL_NAMES, CHANNELS
from retina.layout.model import LayoutSampler

LABEL_EXTRA = ("seed", "model", "checkpoint", "vessels", "post_processed")


def colour_masks(masks: np.ndarray) -> np.ndarray:
    """``bool (NUM_CHANNELS, H, W)`` -> uint8 (H, W, 3): schema colours painted in channel order (fov first)."""
    height, width = masks.shape[-2:]
    picture = np.zeros((height, width, 3), dtype=np.uint8)
    order = [CHANNEL_INDEX["fov"]] + [i for i in range(len(CHANNELS)) if CHANNELS[i].name != "fov"]
    for index in order:
        picture[masks[index]] = CHANNELS[index].color
    return picture


def preview_grid(masks: np.ndarray, grades: list[int], per_row: int = 8, real: np.ndarray | None = None,
                 real_grades: list[int] | None = None) -> np.ndarray:
    """A grid of coloured masks: one row per grade (up to ``per_row`` samples each), each row's first tile
    captioned with its grade; ``real`` (with ``real_grades``) adds a first row of real masks, captioned ``real``
    and each tile with its grade. 2-pixel gutters."""
    from retina.common.captions import caption

    size = masks.shape[-1]
    blank = np.zeros((size, size, 3), np.uint8)

    def row(tiles: list[np.ndarray]) -> np.ndarray:
        tiles = tiles[:per_row] + [blank] * (per_row - len(tiles[:per_row]))
        return np.concatenate([np.pad(t, ((1, 1), (1, 1), (0, 0))) for t in tiles], axis=1)

    rows = []
    if real is not None and len(real):
        labels = real_grades or [None] * len(real)
        tiles = [caption(colour_masks(m), "real" + ("" if g is None else f" grade {g}"),
                         "real" if g is None else f"r{g}") for m, g in zip(real, labels, strict=False)]
        rows.append(row(tiles))
    for grade in sorted(set(grades)):
        chosen = [colour_masks(masks[i]) for i, g in enumerate(grades) if g == grade][:per_row]
        if chosen:
            chosen[0] = caption(chosen[0], f"grade {grade}", f"g{grade}")
        rows.append(row(chosen))
    return np.concatenate(rows, axis=0)


def write_layouts(
    model: LayoutSampler,
    grades: list[int],
    seeds: list[int],
    res: int,
    out: str | Path,
    batch: int = 16,
    truncation: float = 1.0,
    vessels: object | None = None,
    vessels_name: str = "gan",
    post_process: Callable[[np.ndarray, tuple[str, ...], tuple[str, ...]], tuple[np.ndarray, bool]] | None = None,
    overwrite: bool = False,
    generators: list[dict] | None = None,
) -> Path:
    """Sample ``len(grades)`` layouts in batches and write them to ``out`` in the canonical format.
    ``generators``: the records of the models drawn from (:func:`retina.common.fingerprint.generator_record`),
    with their training sets' fingerprints, for retina.json."""
    channels = tuple(model.channels)
    if vessels is not None and "vessels" not in channels:
        channels = tuple(c for c in (c.name for c in CHANNELS) if c in (*channels, "vessels"))
    provenance = {"model": model.name, "checkpoint": model.checkpoint_hash, "truncation": truncation,
                  "vessels": vessels_name, "seeds": [seeds[0], seeds[-1]] if seeds else [],
                  "command": "layout sample", "generators": list(generators or [])}
    preview: list[np.ndarray] = []
    preview_grades: list[int] = []
    fixed_total = 0
    with CanonicalWriter(out, resolution=res, provenance=provenance, extra_columns=LABEL_EXTRA,
                         overwrite=overwrite) as writer, progress_bar(len(grades), "sampling layouts") as bar:
        for start in range(0, len(grades), batch):
            batch_grades, batch_seeds = grades[start:start + batch], seeds[start:start + batch]
            masks = model.sample(batch_grades, batch_seeds, res, truncation)
            if vessels is not None:
                masks = vessels.replace(masks, batch_seeds)
            for offset, (grade, seed) in enumerate(zip(batch_grades, batch_seeds, strict=False)):
                stack, fixed = masks[offset], False
                if post_process is not None:
                    stack, fixed = post_process(stack, CHANNEL_NAMES, channels)
                fixed_total += int(fixed)
                writer.add(f"layout_{start + offset:06d}", masks={c: stack[CHANNEL_INDEX[c]] for c in channels},
                           grade=grade, split="train", source=f"layout:{model.name}", seed=seed, model=model.name,
                           checkpoint=model.checkpoint_hash, vessels=vessels_name, post_processed=int(fixed))
                if preview_grades.count(grade) < 8:
                    preview.append(stack)
                    preview_grades.append(grade)
            bar.advance(len(batch_grades))
        write_png(writer.partial / "preview.png", preview_grid(np.stack(preview), preview_grades))
        elapsed = bar.elapsed
    summary(f"wrote {len(grades)} layouts ({model.name}{' ' + model.checkpoint_hash if model.checkpoint_hash else ''},"
            f" {res}px, {len(grades) / max(elapsed, 1e-9):.1f} masks/s, post-processed {fixed_total}) to {out}")
    return Path(out)
