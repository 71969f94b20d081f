"""What an importer is: it scans a data set's published layout into a list of :class:`SourceItem`.

Importers only find files and labels; :mod:`retina.data.importers.pipeline` does the reading, FOV crop, resizing
and writing the same way for every data set. The helpers here locate a layout's root and read its label files
with one-line errors that name the path expected.
"""

from __future__ import annotations

import csv
import hashlib
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from retina.common.errors import RetinaError, parse_grade
from retina.common.imageio import list_images

# Sets whose source has no split get a deterministic one: the same name always lands in the same split.
TRAIN_PERCENT = 80


@dataclass
class SourceItem:
    name: str  # output name (file stem, unique within the set)
    image: Path
    masks: dict[str, Path] = field(default_factory=dict)  # channel -> mask file (only files that exist)
    fov: Path | None = None  # the data set's own field-of-view mask, if it ships one
    grade: int | None = None
    split: str | None = None  # None: deterministic 80/20 by name hash
    extra: dict[str, str] = field(default_factory=dict)  # extra labels.csv columns
    counted: dict[str, Path] = field(default_factory=dict)  # masks with no channel: only instances are counted


@dataclass
class Scan:
    root: Path  # the folder the layout was found in
    items: list[SourceItem]
    skipped: Counter = field(default_factory=Counter)  # reason -> number of source images left out


@dataclass(frozen=True)
class Importer:
    name: str
    description: str
    scan: Callable[[Path], Scan]
    channels: tuple[str, ...] = ()  # mask channels the source provides (fov is always written)
    # IDRiD and DDR ship a mask file only for images that have the lesion: no file means no lesion. For vessels
    # (DRIVE) a missing file is an error, never silent zeros.
    absent_mask_is_empty: bool = True
    extra_columns: tuple[str, ...] = ()
    has_grades: bool = True
    # Width/height of the photographs before a third party squashed them (None: they were not). The pipeline
    # stretches image and masks back to it before the field-of-view crop, so that optic discs come out round.
    source_aspect: tuple[int, int] | None = None


def parse_aspect(text: str) -> tuple[int, int] | None | str:
    """``--aspect``: 'auto', 'none' or W:H with positive whole numbers."""
    value = text.strip().lower()
    if value in ("auto", "none"):
        return None if value == "none" else "auto"
    width, sep, height = value.partition(":")
    if sep and width.isdigit() and height.isdigit() and int(width) > 0 and int(height) > 0:
        return int(width), int(height)
    raise RetinaError(f"--aspect {text!r}: expected W:H (e.g. 4288:2848), 'auto' or 'none'")


def hash_split(name: str) -> str:
    """'train' for ~80% of names and 'test' for the rest, fixed by the name alone."""
    digest = int(hashlib.sha256(name.encode("utf-8")).hexdigest()[:8], 16)
    return "train" if digest % 100 < TRAIN_PERCENT else "test"


def find_root(src: Path, marker: str, fmt: str, depth: int = 2) -> Path:
    """The folder under ``src`` (itself, or up to ``depth`` levels below) that contains ``marker``.

    Archives unpack either to the layout's root or to a folder one or two levels above it.
    """
    src = Path(src)
    if not src.is_dir():
        raise RetinaError(f"{src}: source folder not found")
    level = [src]
    for _ in range(depth + 1):
        for folder in level:
            if (folder / marker).exists():
                return folder
        level = sorted(child for folder in level for child in folder.iterdir() if child.is_dir())
    raise RetinaError(f"{src}: expected '{marker}' ({src / marker}, or up to {depth} folders below) for "
                      f"--format {fmt}; point SRC at the unpacked data set")


def require(path: Path, fmt: str, what: str = "") -> Path:
    if not path.exists():
        raise RetinaError(f"{path}: not found{f' ({what})' if what else ''}; expected by the --format {fmt} layout")
    return path


def images_by_stem(folder: Path) -> dict[str, Path]:
    images: dict[str, Path] = {}
    for path in list_images(folder):
        if path.stem in images:  # e.g. a .jpg and a .png export of one photograph: which one is meant?
            raise RetinaError(f"{path}: two photographs named '{path.stem}' ({images[path.stem].name}, {path.name}); "
                              "remove or rename one")
        images[path.stem] = path
    return images


def read_csv_rows(path: Path, columns: Iterable[str], header: bool = True) -> list[tuple[int, dict[str, str]]]:
    """Rows of a CSV as (line number, {column: stripped cell}); with ``header=False`` ``columns`` name the cells.

    Header names are compared stripped and case-insensitively (IDRiD's CSVs carry trailing blanks and empty
    columns); a missing column is a one-line error that lists what the file has.
    """
    columns = list(columns)
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            lines = list(csv.reader(handle))
    except UnicodeDecodeError:
        raise RetinaError(f"{path}: not UTF-8 text; save it as UTF-8 CSV") from None
    except csv.Error as error:
        raise RetinaError(f"{path}: malformed CSV ({error})") from None
    rows: list[tuple[int, dict[str, str]]] = []
    if header:
        if not lines:
            raise RetinaError(f"{path}: empty file; expected a header with {', '.join(columns)}")
        found = [cell.strip().lower() for cell in lines[0]]
        missing = [c for c in columns if c.lower() not in found]
        if missing:
            raise RetinaError(f"{path}: missing column(s) {', '.join(missing)} (has: {', '.join(lines[0])})")
        positions = {c: found.index(c.lower()) for c in columns}
        body = enumerate(lines[1:], start=2)
    else:
        positions = {c: i for i, c in enumerate(columns)}
        body = enumerate(lines, start=1)
    for number, cells in body:
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) < len(columns):
            raise RetinaError(f"{path}:{number}: {len(cells)} cell(s), expected {', '.join(columns)}")
        rows.append((number, {c: cells[i].strip() for c, i in positions.items()}))
    return rows


def grade_of(value: str, path: Path, line: int) -> int:
    return parse_grade(value, f"{path}:{line}")
