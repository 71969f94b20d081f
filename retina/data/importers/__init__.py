"""Importers for public fundus data sets: each reads one published layout into the canonical format.

Each module scans one data set's folders and label files into :class:`~retina.data.importers.base.SourceItem`
lists; :func:`~retina.data.importers.pipeline.import_dataset` does the rest the same way for all of them.
"""

from __future__ import annotations

from retina.common.errors import RetinaError
from retina.data.importers.base import Importer
from retina.data.importers.ddr import DDR
from retina.data.importers.drive import DRIVE
from retina.data.importers.fgadr import FGADR
from retina.data.importers.grades_only import APTOS, EYEPACS
from retina.data.importers.idrid import IDRID, IDRID_GRADING
from retina.data.importers.idrid_seg512 import IDRID_SEG512

IMPORTERS: dict[str, Importer] = {
    importer.name: importer for importer in (IDRID, IDRID_GRADING, FGADR, DDR, DRIVE, EYEPACS, APTOS, IDRID_SEG512)
}


def get_importer(name: str) -> Importer:
    key = name.strip().lower()
    if key not in IMPORTERS:
        raise RetinaError(f"unknown --format '{name}'; known formats: {', '.join(IMPORTERS)}")
    return IMPORTERS[key]
