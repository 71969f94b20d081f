"""DRIVE (Staal et al., IEEE TMI 2004).

``{training,test}/images/NN_{training,test}.tif``, manual vessel tracings ``1st_manual/NN_manual1.gif`` and the
field-of-view masks ``mask/NN_{training,test}_mask.gif``. No grades; the splits are the folders. A missing vessel
tracing is an error, never an empty mask.
"""

from __future__ import annotations

from pathlib import Path

from retina.data.importers.base import Importer, Scan, SourceItem, find_root, images_by_stem, require

SPLITS = {"training": "train", "test": "test"}


def scan(src: Path) -> Scan:
    root = find_root(src, "training", "drive")
    require(root / "training" / "images", "drive", "the training photographs")
    items = []
    for folder, split in SPLITS.items():
        image_dir = root / folder / "images"
        if not image_dir.is_dir():
            continue
        for stem, image in images_by_stem(image_dir).items():
            number = stem.split("_")[0]
            vessels = require(root / folder / "1st_manual" / f"{number}_manual1.gif", "drive", "vessel tracing")
            fov = require(root / folder / "mask" / f"{stem}_mask.gif", "drive", "field-of-view mask")
            items.append(SourceItem(stem, image, {"vessels": vessels}, fov=fov, split=split))
    return Scan(root, items)


DRIVE = Importer("drive", "DRIVE (vessel tracings and FOV masks; no grades)", scan, channels=("vessels",),
                 absent_mask_is_empty=False, has_grades=False)
