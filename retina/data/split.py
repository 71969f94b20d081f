"""Split a canonical data set into a training set and a held-out set, copying files byte for byte.

A held-out set that the generators never see is what every fair evaluation here needs (Son et al. hold out
20 % of the real images). The split depends only on the names and the seed, so it can be recorded and redone.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from retina.common.canonical import CanonicalDataset, CanonicalWriter, Sample
from retina.common.errors import RetinaError


def copy_sample(writer: CanonicalWriter, data: CanonicalDataset, sample: Sample, split: str | None = None) -> None:
    """Copy one sample's canonical PNGs and its label row into ``writer`` (no re-encoding)."""
    image = data.image_path(sample.name) if data.has_images else None
    masks = {c: data.mask_path(c, sample.name) for c in data.channels}
    writer.add_files(sample.name, image=image, masks=masks, grade=sample.grade,
                     split=sample.split if split is None else split, source=sample.source, **sample.extra)


def heldout_random(names: Iterable[str], fraction: float, seed: int) -> set[str]:
    """``round(fraction * n)`` names drawn with a seeded permutation of the sorted names."""
    ordered = sorted(names)
    if not 0 < fraction < 1:
        raise RetinaError(f"--fraction {fraction}: the held-out share must lie strictly between 0 and 1")
    count = max(1, round(fraction * len(ordered)))
    order = np.random.default_rng(seed).permutation(len(ordered))
    return {ordered[i] for i in order[:count]}


def heldout_every(names: Iterable[str], every: int) -> set[str]:
    """Every ``every``-th name in sorted order (positions 0, k, 2k, ...): no randomness at all."""
    return set(sorted(names)[::every])


def write_split(data: CanonicalDataset, heldout: set[str], train_out: str | Path, heldout_out: str | Path,
                rule: str) -> tuple[int, int]:
    """Write ``train_out`` (split=train) and ``heldout_out`` (split=test); returns their sizes."""
    if not heldout or len(heldout) >= len(data):
        raise RetinaError(f"{data.root}: a split needs samples on both sides ({len(data)} samples)")
    sides = (("train", train_out, [s for s in data.samples if s.name not in heldout]),
             ("test", heldout_out, [s for s in data.samples if s.name in heldout]))
    extra_columns = sorted({key for sample in data.samples for key in sample.extra})
    for split, out, samples in sides:
        provenance = {"split_of": str(Path(data.root).resolve()), "split": split, "rule": rule,
                      "heldout_names": sorted(heldout), "source_provenance": data.info.get("provenance", {})}
        with CanonicalWriter(out, resolution=data.resolution, provenance=provenance,
                             extra_columns=extra_columns) as writer:
            for sample in samples:
                copy_sample(writer, data, sample, split)
    return len(data) - len(heldout), len(heldout)
