"""Write a procedural phantom data set in the canonical format (test data and embedded default)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from retina.common.canonical import CanonicalWriter, masks_to_dict
from retina.common.errors import RetinaError, parse_grade
from retina.common.memory import require_memory, sampling_bytes
from retina.common.progress import progress_bar
from retina.common.provenance import synthetic_png_text
from retina.common.seeding import sample_seed
from retina.data.split import assign_splits
from retina.phantom.layout import sample_layout
from retina.phantom.render import render_fundus

PROVENANCE = "procedural phantom (synthetic, not real data)"


def write_phantom(
    out: str | Path,
    n: int,
    size: int,
    grades: Sequence[int],
    seed: int,
    split_fractions: Sequence[float] = (0.8, 0.1, 0.1),
    overwrite: bool = False,
    progress: bool = False,
) -> Path:
    """Write ``n`` phantom fundus images with all mask channels; grades cycle through ``grades`` (balanced)."""
    if n < 1:
        raise RetinaError(f"--n {n}: a phantom data set needs at least one image")
    if size < 16:
        raise RetinaError(f"--res {size}: too small to draw a fundus; use --res 16 or more")
    one = sampling_bytes(1, size)
    require_memory(one, one, "a phantom image", 1, size, batch_option=None, res_option="--res")
    grades = [parse_grade(g, "--grades") for g in grades]
    if not grades:
        raise RetinaError("--grades is empty; give e.g. 0-4")
    per_sample = [grades[i % len(grades)] for i in range(n)]
    splits = assign_splits(per_sample, split_fractions, seed)
    provenance = {
        "description": PROVENANCE,
        "generator": "retina.phantom",
        "seed": int(seed),
        "grades": list(grades),
        "split_fractions": list(split_fractions),
    }
    digits = max(5, len(str(n - 1)))
    with CanonicalWriter(out, resolution=size, provenance=provenance, extra_columns=("eye", "seed"),
                         overwrite=overwrite) as writer, progress_bar(n, "phantom", enabled=progress) as bar:
        for index, grade in enumerate(per_sample):
            item_seed = sample_seed(seed, index)
            layout = sample_layout(grade, size, item_seed)
            image = render_fundus(layout.masks, grade, item_seed)
            writer.add(f"phantom_{index:0{digits}d}", image=image, masks=masks_to_dict(layout.masks), grade=grade,
                       split=splits[index], source="phantom", eye=layout.eye, seed=item_seed,
                       png_text=synthetic_png_text(grade, "phantom", item_seed))
            bar.advance(1)
    return writer.out
