"""IDRiD (Porwal et al., Data 2018), as published on IEEE Dataport.

``A. Segmentation``: ``1. Original Images/{a. Training Set,b. Testing Set}/IDRiD_NN.jpg`` and
``2. All Segmentation Groundtruths/<split>/{1. Microaneurysms,...,5. Optic Disc}/IDRiD_NN_{MA,HE,EX,SE,OD}.tif``
(lesions drawn in the red channel). A lesion folder holds a file only for images that have the lesion (soft
exudates: 26 of 54 training images), so a missing file is an empty mask. The segmentation images have no DR grade.

``B. Disease Grading`` (format ``idrid-grading``): ``1. Original Images/<split>/IDRiD_NNN.jpg`` and
``2. Groundtruths/{a. IDRiD_Disease Grading_Training Labels.csv, b. ..._Testing Labels.csv}`` with columns
``Image name, Retinopathy grade, Risk of macular edema``. These are other photographs than part A's, so the two
parts are imported as two sets (a mixed set would have masks for some images only).
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

SEGMENTATION = "A. Segmentation"
GRADING = "B. Disease Grading"
IMAGES = "1. Original Images"
GROUNDTRUTHS = "2. All Segmentation Groundtruths"
SPLITS = {"a. Training Set": "train", "b. Testing Set": "test"}
LESION_FOLDERS = {
    "ma": ("1. Microaneurysms", "MA"),
    "he": ("2. Haemorrhages", "HE"),
    "ex": ("3. Hard Exudates", "EX"),
    "se": ("4. Soft Exudates", "SE"),
    "od": ("5. Optic Disc", "OD"),
}
GRADE_CSVS = {
    "train": "a. IDRiD_Disease Grading_Training Labels.csv",
    "test": "b. IDRiD_Disease Grading_Testing Labels.csv",
}
GRADE_COLUMNS = ("Image name", "Retinopathy grade", "Risk of macular edema")


def scan_segmentation(src: Path) -> Scan:
    try:
        root = find_root(src, GROUNDTRUTHS, "idrid", depth=3)
    except RetinaError:
        try:
            other = find_root(src, "2. Groundtruths", "idrid-grading", depth=3)
        except RetinaError:
            other = None
        if other is not None:
            raise RetinaError(f"{other}: this is IDRiD '{GRADING}'; import it with --format idrid-grading") from None
        raise
    items = []
    for folder, split in SPLITS.items():
        image_dir = root / IMAGES / folder
        if split == "train":
            require(image_dir, "idrid", "the segmentation photographs")
        if not image_dir.is_dir():
            continue
        truth_dir = require(root / GROUNDTRUTHS / folder, "idrid", f"masks for {folder}")
        for stem, image in images_by_stem(image_dir).items():
            masks = {}
            for channel, (lesion_folder, suffix) in LESION_FOLDERS.items():
                for extension in (".tif", ".tiff", ".TIF", ".png", ".jpg"):
                    path = truth_dir / lesion_folder / f"{stem}_{suffix}{extension}"
                    if path.is_file():
                        masks[channel] = path
                        break
            items.append(SourceItem(stem, image, masks, split=split))
    return Scan(root, items)


def scan_grading(src: Path) -> Scan:
    root = find_root(src, "2. Groundtruths", "idrid-grading", depth=3)
    items = []
    for folder, split in SPLITS.items():
        csv_path = root / "2. Groundtruths" / GRADE_CSVS[split]
        image_dir = root / IMAGES / folder
        if split == "train":
            require(csv_path, "idrid-grading", "the training grades")
            require(image_dir, "idrid-grading", "the training photographs")
        if not csv_path.is_file() or not image_dir.is_dir():
            continue
        images = images_by_stem(image_dir)
        for line, row in read_csv_rows(csv_path, GRADE_COLUMNS):
            stem = Path(row["Image name"]).stem
            if stem not in images:
                raise RetinaError(f"{csv_path}:{line}: image '{stem}' not found in {image_dir}")
            items.append(SourceItem(
                stem, images[stem], grade=grade_of(row["Retinopathy grade"], csv_path, line), split=split,
                extra={"macular_edema": row["Risk of macular edema"]},
            ))
    return Scan(root, items)


IDRID = Importer(
    "idrid", "IDRiD A. Segmentation (MA, HE, EX, SE, OD masks; no grades)", scan_segmentation,
    channels=("ma", "he", "ex", "se", "od"), has_grades=False,
)
IDRID_GRADING = Importer(
    "idrid-grading", "IDRiD B. Disease Grading (grades and macular-edema risk; no masks)", scan_grading,
    extra_columns=("macular_edema",),
)
