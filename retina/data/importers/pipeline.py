"""Import a scanned data set into the canonical format: FOV crop, pad to square, resize, write, account.

The same steps for every data set: read the photograph and its masks, take the field of view from the data set's
own FOV mask or by thresholding, crop to it and pad to a square, resize (photograph with antialiasing, masks with
max pooling), and write through :class:`CanonicalWriter`, so a failure half-way leaves no output folder.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from retina.common.canonical import CanonicalWriter
from retina.common.errors import RetinaError
from retina.common.grade_rule import PROVENANCE_NOTE, grade_from_masks
from retina.common.imageio import read_image, read_mask
from retina.common.progress import progress_bar
from retina.common.schema import CHANNEL_NAMES
from retina.data.fov import FOV_MIN_THRESHOLD, fov_from_image, square_crop
from retina.data.importers.base import Importer, Scan, SourceItem, hash_split
from retina.data.mask_resize import MaskLoss, measure_loss, resize_mask_stack, resize_photo, stretch_to_aspect


@dataclass
class ImportReport:
    out: Path
    format: str
    count: int
    size: int
    skipped: Counter
    loss: dict[str, MaskLoss]
    grades: Counter = field(default_factory=Counter)
    suspicious: dict[str, list[str]] = field(default_factory=dict)  # reason -> names imported but worth a look

    def summary_line(self) -> str:
        skipped = ", ".join(f"{n} {reason}" for reason, n in sorted(self.skipped.items())) or "none"
        lost = "; ".join(
            f"{c} {m.lost_instances}/{m.instances_before} instances ({m.instances_after} after), "
            f"{m.lost_pixels}/{m.pixels_before} px, area x{m.area_after / max(m.pixels_before, 1):.1f}"
            for c, m in self.loss.items()
        ) or "no masks"
        flagged = "".join(f"; {len(names)} {reason} (e.g. {names[0]})" for reason, names in self.suspicious.items())
        return (f"imported {self.count} images ({self.format}) into {self.out} at {self.size}px; "
                f"skipped: {skipped}; lost by resizing: {lost}{flagged}")


# A photograph whose brightest pixel is this dark holds no retina (a failed capture, or an all-black export).
BLANK_LEVEL = FOV_MIN_THRESHOLD


def _read_item(item: SourceItem, importer: Importer) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    image = read_image(item.image)
    shape = image.shape[:2]
    masks: dict[str, np.ndarray] = {}
    for channel in importer.channels:
        path = item.masks.get(channel)
        if path is None:
            if not importer.absent_mask_is_empty:
                raise RetinaError(f"{item.image}: no '{channel}' mask found for it; restore the data set's file")
            masks[channel] = np.zeros(shape, dtype=bool)
            continue
        masks[channel] = read_mask(path)
    fov = read_mask(item.fov) if item.fov is not None else fov_from_image(image)
    for channel, plane in [*masks.items(), ("fov", fov)]:
        if plane.shape != shape:
            where = item.masks.get(channel, item.fov)
            raise RetinaError(f"{where}: mask is {plane.shape[1]}x{plane.shape[0]} but its image {item.image.name} "
                              f"is {shape[1]}x{shape[0]}; the files do not belong together")
    return image, masks, fov


def _count_instances(path: Path, image_shape: tuple[int, int]) -> int:
    import cv2

    mask = read_mask(path)
    if mask.shape != image_shape:
        raise RetinaError(f"{path}: mask is {mask.shape[1]}x{mask.shape[0]}, "
                          f"its image {image_shape[1]}x{image_shape[0]}; the files do not belong together")
    return cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)[0] - 1


def _skip_undecodable_names(scan: Scan) -> None:
    """Leave out (and count) files whose names are not valid UTF-8: labels.csv and retina.json cannot hold them."""
    kept = []
    for item in scan.items:
        try:
            item.name.encode("utf-8")
        except UnicodeEncodeError:
            scan.skipped["file name not valid UTF-8 (rename it to import it)"] += 1
            continue
        kept.append(item)
    scan.items = kept


def import_dataset(
    importer: Importer,
    src: str | Path,
    out: str | Path,
    size: int,
    *,
    overwrite: bool = False,
    estimate: bool = False,
    limit: int | None = None,
    aspect: tuple[int, int] | None | str = "auto",
    show_progress: bool = True,
) -> ImportReport:
    """Import ``src`` (in ``importer``'s published layout) into the canonical set ``out`` at ``size`` pixels.

    ``aspect``: the width/height the photographs had before they were squashed, restored before the field-of-view
    crop; ``"auto"`` takes the importer's known value (``source_aspect``), ``None`` keeps the files as they are.
    """
    if aspect == "auto":
        aspect = importer.source_aspect
    if size < 8:
        raise RetinaError(f"--res {size} is too small; use at least 8 (e.g. 256 or 512)")
    if estimate and not (set(importer.channels) & {"ma", "he", "ex", "se", "nv"}):
        raise RetinaError(f"--estimate-grade needs lesion masks, and --format {importer.name} has none")
    scan = importer.scan(Path(src))
    _skip_undecodable_names(scan)
    items = scan.items[:limit] if limit is not None else scan.items
    if not items:
        raise RetinaError(f"{scan.root}: no images found for --format {importer.name}; check SRC")
    loss = {c: MaskLoss() for c in importer.channels}
    grades: Counter = Counter()
    suspicious: dict[str, list[str]] = {}
    provenance: dict[str, Any] = {
        "format": importer.name,
        "description": importer.description,
        "source": str(Path(scan.root).resolve()),
        "size": size,
        "preprocessing": "field-of-view crop (dataset FOV mask or red-channel threshold, largest component), "
                         "centred zero padding to a square, antialiased image resize, max-pooled mask resize",
        "skipped": dict(scan.skipped),
    }
    if estimate:
        provenance["grade_note"] = PROVENANCE_NOTE
    if aspect is not None:
        provenance["aspect_restored"] = f"{aspect[0]}:{aspect[1]} (stretched back before the field-of-view crop)"
    if limit is not None:
        provenance["limit"] = f"first {len(items)} of {len(scan.items)} images (--limit)"
    extra_columns = list(importer.extra_columns)
    channels_written = [c for c in CHANNEL_NAMES if c in importer.channels or c == "fov"]
    with CanonicalWriter(out, resolution=size, provenance=provenance, extra_columns=extra_columns,
                         overwrite=overwrite) as writer:
        with progress_bar(len(items), f"import {importer.name}", enabled=show_progress) as bar:
            for item in items:
                image, masks, fov = _read_item(item, importer)
                source_shape = image.shape[:2]
                if aspect is not None:
                    image, masks, fov = stretch_to_aspect(image, masks, fov, aspect)
                if image.max() <= BLANK_LEVEL:
                    suspicious.setdefault("blank photographs kept (every pixel dark)", []).append(item.name)
                crop = square_crop(fov)
                stack = crop.apply_stack(np.stack([masks[c] if c != "fov" else fov for c in channels_written]))
                resized = resize_mask_stack(stack, size)
                for i, channel in enumerate(channels_written):
                    if channel != "fov":
                        loss[channel] += measure_loss(stack[i], resized[i])
                grade = item.grade
                if grade is None and estimate:
                    grade = grade_from_masks(dict(zip(channels_written, stack, strict=True)))
                extra = dict(item.extra)
                for key, path in item.counted.items():
                    extra[f"{key}_instances"] = _count_instances(path, source_shape)
                writer.add(
                    item.name,
                    image=resize_photo(crop.apply(image), size),
                    masks=dict(zip(channels_written, resized, strict=True)),
                    grade=grade,
                    split=item.split or hash_split(item.name),
                    source=importer.name,
                    **extra,
                )
                grades["unknown" if grade is None else grade] += 1
                bar.advance(1)
        if suspicious:
            writer.provenance["suspicious"] = suspicious
        writer.provenance["counts"] = {
            "images": len(items), "grades": {str(k): v for k, v in sorted(grades.items(), key=str)},
        }
        writer.provenance["lost_by_resizing"] = {c: m.as_dict() for c, m in loss.items()}
    return ImportReport(Path(out), importer.name, len(items), size, scan.skipped, loss, grades, suspicious)
