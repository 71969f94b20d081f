"""Copy a canonical mask folder and add empty mask planes for channels it lacks (IDRiD has no vessel masks).

The procedural renderer needs vessels, od and fov; IDRiD's segmentation set has no vessel annotation, so the
procedural baseline renders the held-out masks with an empty vessels plane (no vessels drawn).

    python experiments/render_idrid/baseline_masks.py /tmp/r_idrid128_heldout /tmp/r_idrid128_heldout_novessels vessels
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from retina.common.canonical import CanonicalDataset, CanonicalWriter, masks_to_dict


def main(source_dir: str, out: str, *channels: str) -> None:
    source = CanonicalDataset(source_dir)
    size = source.resolution
    with CanonicalWriter(Path(out), resolution=size, provenance={"copy_of": str(source.root),
                                                                  "empty_channels": list(channels)}) as writer:
        for name in source.names:
            sample = source.sample(name)
            masks = masks_to_dict(source.load_masks(name, source.channels), source.channels)
            masks.update({c: np.zeros((size, size), dtype=bool) for c in channels})
            writer.add(name, image=source.load_image(name) if source.has_images else None, masks=masks,
                       grade=sample.grade, split=sample.split, source=sample.source)
    print(f"{len(source)} mask sets -> {out} with empty {', '.join(channels)}")


if __name__ == "__main__":
    main(*sys.argv[1:])
