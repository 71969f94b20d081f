"""A smaller copy of a canonical set: photographs area-resampled, masks max-pooled (a lesion keeps at least one
pixel), every row's grade, split, source and extra columns kept, so a set imported once at 512 px gives its
256-px twin with the very same split and labels (rather than a second import whose estimated grades, and so its
stratified split, could differ)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from retina.common.canonical import CanonicalDataset, CanonicalWriter
from retina.common.dataset import resize_image, resize_masks
from retina.common.errors import RetinaError
from retina.common.progress import progress_bar, summary


def resize_dataset(root: Path, size: int, out: Path, overwrite: bool = False, show: bool = True) -> Path:
    source = CanonicalDataset(root)
    if source.resolution is not None and size > source.resolution:
        raise RetinaError(f"--res {size}: above {root}'s {source.resolution} px; resizing only shrinks (import the "
                          "photographs again at the larger size)")
    extra_columns = sorted({k for s in source.samples for k in s.extra})
    provenance = {**source.info.get("provenance", {}), "resized_from": str(root),
                  "resized_from_resolution": source.resolution}
    with CanonicalWriter(out, resolution=size, provenance=provenance, extra_columns=extra_columns,
                         overwrite=overwrite) as writer, \
            progress_bar(len(source), "resize", enabled=show) as bar:
        for sample in source.samples:
            image = None
            if source.has_images:
                photo = torch.from_numpy(source.load_image(sample.name)).permute(2, 0, 1).float()
                small = resize_image(photo, size).round().clamp(0, 255)
                image = small.byte().permute(1, 2, 0).numpy()
            masks = {}
            if source.channels:
                stack = torch.from_numpy(source.load_masks(sample.name).astype(np.uint8))
                masks = dict(zip(source.channels, resize_masks(stack, size).numpy() > 0.5, strict=True))
            writer.add(sample.name, image=image, masks=masks, grade=sample.grade, split=sample.split,
                       source=sample.source, **sample.extra)
            bar.advance(1)
    summary(f"resized {len(source)} samples of {root} to {size} px (grades, split and labels kept) -> {out}", show)
    return out
