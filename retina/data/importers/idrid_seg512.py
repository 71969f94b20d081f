"""The third-party 512x512 IDRiD segmentation subset (github.com/qinghao1/idrid-1; see its SOURCE.txt).

``images/IDRiD_NN.jpg`` and binarised masks ``masks_png/IDRiD_NN_{EX,HE,MA,OD,SE}.png`` (a missing file is an
empty mask: SE exists for 26 of the 54 images). The photographs carry no DR grade: the grade stays empty unless
``--estimate-grade`` is given. ``nar_images/`` (no masks) is not imported. All 54 images are IDRiD training
images, so the split is the deterministic 80/20 by name.

Its SOURCE.txt says the 4288x2848 originals were squashed to a square. Measured against the full-resolution
originals of the 20 images both sets hold (IDRiD_01..20), they were not: the field of view's width/height in the
512x512 copies is 0.995 ± 0.004 times the original's, because the copies are cropped to the field's width and
letterboxed. So no aspect is restored by default; ``--aspect W:H`` exists for copies that really were squashed.
"""

from __future__ import annotations

from pathlib import Path

from retina.data.importers.base import Importer, Scan, SourceItem, find_root, images_by_stem, require

SUFFIXES = {"ma": "MA", "he": "HE", "ex": "EX", "se": "SE", "od": "OD"}


def scan(src: Path) -> Scan:
    root = find_root(src, "masks_png", "idrid-seg512")
    items = []
    for stem, image in images_by_stem(require(root / "images", "idrid-seg512", "the photographs")).items():
        masks = {c: root / "masks_png" / f"{stem}_{s}.png" for c, s in SUFFIXES.items()
                 if (root / "masks_png" / f"{stem}_{s}.png").is_file()}
        items.append(SourceItem(stem, image, masks))
    return Scan(root, items)


IDRID_SEG512 = Importer("idrid-seg512", "IDRiD segmentation subset squashed to 512x512 (qinghao1/idrid-1)", scan,
                        channels=tuple(SUFFIXES), has_grades=False)
