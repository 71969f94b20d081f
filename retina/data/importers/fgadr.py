"""FGADR Seg-set (Zhou et al., IEEE TMI 2021).

``Seg-set/Original_Images/NAME.png``, one folder of binary PNG masks per lesion with the image's file name
(``Microaneurysms_Masks``, ``Hemohedge_Masks`` (sic), ``HardExudate_Masks``, ``SoftExudate_Masks``,
``Neovascularization_Masks``, ``IRMA_Masks``) and ``Seg-set/DR_Seg_Grading_Label.csv`` without a header
(``name,grade``). A missing mask file is an empty mask. Intraretinal microvascular abnormalities (IRMA) have no
channel in our schema (they are neither new vessels nor haemorrhages); we keep their count as the extra column
``irma_instances`` so that the information is not lost silently.
"""

from __future__ import annotations

from pathlib import Path

from retina.common.errors import RetinaError
from retina.data.importers.base import (
    Importer,
    Scan,
    SourceItem,
    find_root,
    grade_of,
    images_by_stem,
    read_csv_rows,
    require,
)

IMAGES = "Original_Images"
GRADES_CSV = "DR_Seg_Grading_Label.csv"
MASK_FOLDERS = {
    "ma": "Microaneurysms_Masks",
    "he": "Hemohedge_Masks",
    "ex": "HardExudate_Masks",
    "se": "SoftExudate_Masks",
    "nv": "Neovascularization_Masks",
}
IRMA_FOLDER = "IRMA_Masks"


def _grades(path: Path) -> dict[str, int]:
    rows = read_csv_rows(path, ("name", "grade"), header=False)
    if rows and not rows[0][1]["grade"].lstrip("-").isdigit():  # tolerate a header line if one was added
        rows = rows[1:]
    return {Path(row["name"]).stem: grade_of(row["grade"], path, line) for line, row in rows}


def scan(src: Path) -> Scan:
    root = find_root(src, IMAGES, "fgadr")
    grades_csv = require(root / GRADES_CSV, "fgadr", "the grades, lines 'name,grade'")
    grades = _grades(grades_csv)
    items = []
    for stem, image in images_by_stem(root / IMAGES).items():
        if stem not in grades:
            raise RetinaError(f"{grades_csv}: no grade for image '{image.name}'; add a line '{image.name},GRADE'")
        masks = {c: root / folder / image.name for c, folder in MASK_FOLDERS.items()
                 if (root / folder / image.name).is_file()}
        irma = root / IRMA_FOLDER / image.name
        items.append(SourceItem(stem, image, masks, grade=grades[stem],
                                counted={"irma": irma} if irma.is_file() else {}, extra={"irma_instances": 0}))
    return Scan(root, items)


FGADR = Importer(
    "fgadr", "FGADR Seg-set (MA, HE, EX, SE, NV masks and grades; IRMA counted in irma_instances)", scan,
    channels=tuple(MASK_FOLDERS), extra_columns=("irma_instances",),
)
