"""Grades-only sets from Kaggle: EyePACS and APTOS 2019 (photographs and a grade CSV, no lesion masks).

EyePACS: ``trainLabels.csv`` (``image,level``) and ``train/NAME.jpeg``. APTOS: ``train.csv``
(``id_code,diagnosis``) and ``train_images/ID.png``. Kaggle downloads often arrive in parts, so a row whose
photograph is absent is skipped and counted rather than failing the whole import.
"""

from __future__ import annotations

from pathlib import Path

from retina.data.importers.base import Importer, Scan, SourceItem, find_root, grade_of, read_csv_rows, require


def _scanner(fmt: str, csv_name: str, image_folder: str, name_column: str, grade_column: str, suffixes: tuple):
    def scan(src: Path) -> Scan:
        root = find_root(src, csv_name, fmt)
        image_dir = require(root / image_folder, fmt, "the photographs")
        result = Scan(root, [])
        for line, row in read_csv_rows(root / csv_name, (name_column, grade_column)):
            grade = grade_of(row[grade_column], root / csv_name, line)
            stem = Path(row[name_column]).stem if Path(row[name_column]).suffix in suffixes else row[name_column]
            image = next((image_dir / f"{stem}{s}" for s in suffixes if (image_dir / f"{stem}{s}").is_file()), None)
            if image is None:
                result.skipped["listed in the CSV but photograph missing"] += 1
                continue
            result.items.append(SourceItem(stem, image, grade=grade))
        return result

    return scan


EYEPACS = Importer("eyepacs", "EyePACS / Kaggle DR 2015 (grades only)",
                   _scanner("eyepacs", "trainLabels.csv", "train", "image", "level", (".jpeg", ".jpg", ".png")))
APTOS = Importer("aptos", "APTOS 2019 blindness detection (grades only)",
                 _scanner("aptos", "train.csv", "train_images", "id_code", "diagnosis", (".png", ".jpg", ".jpeg")))
