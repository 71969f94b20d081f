"""DDR (Li et al., Information Sciences 2019).

``lesion_segmentation/{train,valid,test}/image/NAME.jpg`` with ``label/{EX,HE,MA,SE}/NAME.tif`` (a missing file
is an empty mask), and the grades in ``DR_grading/{train,valid,test}.txt`` (lines ``NAME.jpg GRADE``). Grade 5
marks an ungradable photograph: those are skipped and counted. A segmentation image without a grade line keeps
an empty grade.
"""

from __future__ import annotations

from pathlib import Path

from retina.common.errors import RetinaError
from retina.data.importers.base import Importer, Scan, SourceItem, find_root, grade_of, images_by_stem

SEGMENTATION = "lesion_segmentation"
GRADING = "DR_grading"
SPLITS = {"train": "train", "valid": "val", "test": "test"}
LABELS = {"ex": "EX", "he": "HE", "ma": "MA", "se": "SE"}
UNGRADABLE = 5


def _grades(root: Path) -> dict[str, int]:
    grades: dict[str, int] = {}
    for split in SPLITS:
        path = root / GRADING / f"{split}.txt"
        if not path.is_file():
            continue
        for line, text in enumerate(path.read_text("utf-8", errors="replace").splitlines(), start=1):
            cells = text.split()
            if not cells:
                continue
            if len(cells) != 2:
                raise RetinaError(f"{path}:{line}: expected 'NAME.jpg GRADE', got '{text.strip()}'")
            name, grade = cells
            stem = Path(name).stem
            grades[stem] = UNGRADABLE if grade.strip() == str(UNGRADABLE) else grade_of(grade, path, line)
    return grades


def scan(src: Path) -> Scan:
    root = find_root(src, SEGMENTATION, "ddr")
    grades = _grades(root)
    scan = Scan(root, [])
    for folder, split in SPLITS.items():
        image_dir = root / SEGMENTATION / folder / "image"
        if not image_dir.is_dir():
            if folder == "train":
                raise RetinaError(f"{image_dir}: not found (the training photographs); expected by --format ddr")
            continue
        for stem, image in images_by_stem(image_dir).items():
            grade = grades.get(stem)
            if grade == UNGRADABLE:
                scan.skipped["ungradable (grade 5)"] += 1
                continue
            label_dir = root / SEGMENTATION / folder / "label"
            masks = {}
            for channel, sub in LABELS.items():
                for extension in (".tif", ".tiff", ".png"):
                    if (label_dir / sub / f"{stem}{extension}").is_file():
                        masks[channel] = label_dir / sub / f"{stem}{extension}"
                        break
            scan.items.append(SourceItem(stem, image, masks, grade=grade, split=split))
    return scan


DDR = Importer("ddr", "DDR lesion segmentation (EX, HE, MA, SE masks; grades from DR_grading)", scan,
               channels=tuple(LABELS))
