"""``retina data inspect``: what a canonical data set holds and what is wrong with it.

Every file is read once; a bad file becomes a line in ``problems`` and the scan goes on, so one report lists
everything that needs fixing.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from retina.common.canonical import CanonicalDataset
from retina.common.errors import RetinaError
from retina.common.imageio import read_image, read_mask
from retina.common.progress import progress_bar
from retina.common.schema import CHANNEL_NAMES

EIGHT_CONNECTED = np.ones((3, 3), bool)
# A lesion, vessel or disc mask covering most of the picture is an export gone wrong (an RGBA mask with opaque
# alpha read as coverage, an inverted mask), not anatomy; only the field of view is normally that large.
MOSTLY_FOREGROUND = 0.5
LARGE_CHANNELS_ALLOWED = ("fov",)


def _grade_key(grade: int | None) -> str:
    return "unknown" if grade is None else str(grade)


def _problem(kind: str, path: Path, detail: str) -> dict[str, str]:
    return {"kind": kind, "file": str(path), "detail": detail}


def _stray_files(folder: Path, names: set[str], kind: str, detail: str) -> list[dict[str, str]]:
    if not folder.is_dir():
        return []
    return [
        _problem(kind, path, detail)
        for path in sorted(folder.glob("*.png"))
        if not path.name.startswith(".") and path.stem not in names
    ]


def inspect_dataset(root: str | Path, progress: bool = False) -> dict[str, Any]:
    """A JSON-ready report: counts per grade and split, per-channel mask statistics per grade, problems."""
    data = CanonicalDataset(root)
    names = set(data.names)
    info_path = data.info_path
    problems: list[dict[str, str]] = [_problem("metadata mismatch", info_path, d) for d in data.disagreements]
    resolution = data.info.get("resolution")
    pixels: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    components: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    sizes: Counter = Counter()

    with progress_bar(len(data), "inspect", enabled=progress) as bar:
        for sample in data.samples:
            grade = _grade_key(sample.grade)
            reference: tuple[int, int] | None = None
            if data.has_images:
                path = data.image_path(sample.name)
                if not path.is_file():
                    if any(data.mask_path(c, sample.name).is_file() for c in data.channels):
                        problems.append(_problem("mask without image", path, "masks exist but the image file does not"))
                    else:
                        problems.append(_problem("missing image", path, "listed in labels.csv but no image file"))
                else:
                    try:
                        reference = read_image(path).shape[:2]
                        sizes[f"{reference[1]}x{reference[0]}"] += 1
                    except RetinaError as error:
                        problems.append(_problem("unreadable", path, str(error)))
                    else:
                        if resolution is not None and reference != (resolution, resolution):
                            problems.append(_problem("size mismatch", path, f"image is {reference[1]}x{reference[0]} "
                                                     f"but retina.json says resolution {resolution}"))
            for channel in data.channels:
                path = data.mask_path(channel, sample.name)
                if not path.is_file():
                    problems.append(_problem("missing mask", path, f"no {channel} mask for '{sample.name}'"))
                    continue
                try:
                    mask = read_mask(path)
                except RetinaError as error:
                    problems.append(_problem("unreadable", path, str(error)))
                    continue
                if reference is None:
                    reference = mask.shape
                    if resolution is not None and reference != (resolution, resolution):
                        problems.append(_problem("size mismatch", path, f"mask is {reference[1]}x{reference[0]} but "
                                                 f"retina.json says resolution {resolution}"))
                elif mask.shape != reference:
                    problems.append(_problem(
                        "size mismatch", path,
                        f"mask is {mask.shape[1]}x{mask.shape[0]} but the image is {reference[1]}x{reference[0]}",
                    ))
                    continue
                fraction = float(mask.mean())
                if fraction > MOSTLY_FOREGROUND and channel not in LARGE_CHANNELS_ALLOWED:
                    problems.append(_problem("mostly foreground", path, f"{100 * fraction:.0f}% of the {channel} mask "
                                             "is foreground; an inverted mask or an RGBA export? re-export it"))
                pixels[channel][grade].append(fraction)
                components[channel][grade].append(int(ndimage.label(mask, structure=EIGHT_CONNECTED)[1]))
            bar.advance(1)

    problems += _stray_files(data.root / "images", names, "image without row", "not listed in labels.csv")
    for channel in data.channels:
        problems += _stray_files(data.root / "masks" / channel, names, "mask without row", "not listed in labels.csv")

    grades = Counter(_grade_key(s.grade) for s in data.samples)
    splits = Counter(s.split for s in data.samples)
    by_split: dict[str, Counter] = defaultdict(Counter)
    for sample in data.samples:
        by_split[sample.split][_grade_key(sample.grade)] += 1
    order = sorted(grades, key=lambda g: (g == "unknown", g))
    masks = {
        channel: {
            grade: {
                "images": len(pixels[channel][grade]),
                "pixel_fraction": float(np.mean(pixels[channel][grade])),
                "components": int(np.sum(components[channel][grade])),
                "components_per_image": float(np.mean(components[channel][grade])),
                "images_with_any": int(np.count_nonzero(components[channel][grade])),
            }
            for grade in order
            if pixels[channel][grade]
        }
        for channel in CHANNEL_NAMES
        if channel in data.channels
    }
    provenance = data.info.get("provenance", {})
    return {
        "root": str(data.root),
        "count": len(data),
        "resolution": data.info.get("resolution"),
        "image_sizes": dict(sizes),
        "provenance": provenance,
        "has_images": data.has_images,
        "channels_present": list(data.channels),
        "channels_missing": list(data.missing_channels),
        "grades": {g: grades[g] for g in order},
        "splits": dict(sorted(splits.items())),
        "grades_by_split": {split: {g: by_split[split][g] for g in order} for split in sorted(by_split)},
        "masks": masks,
        "problems": problems,
    }


def print_report(report: dict[str, Any], max_problems: int = 50) -> None:
    """The report as rich tables on stdout."""
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    provenance = report["provenance"]
    description = provenance.get("description", "") if isinstance(provenance, dict) else str(provenance)
    console.print(f"[bold]{report['root']}[/bold]: {report['count']} samples, resolution {report['resolution']}, "
                  f"images: {'yes' if report['has_images'] else 'no (masks only)'}")
    if description:
        console.print(f"provenance: {description}")
    console.print(f"channels: {', '.join(report['channels_present']) or 'none'}"
                  + (f"; missing: {', '.join(report['channels_missing'])}" if report["channels_missing"] else ""))

    grades = list(report["grades"])
    counts = Table(title="samples per grade and split")
    counts.add_column("split")
    for grade in grades:
        counts.add_column(f"grade {grade}", justify="right")
    counts.add_column("total", justify="right")
    for split, row in report["grades_by_split"].items():
        counts.add_row(split, *(str(row[g]) for g in grades), str(sum(row.values())))
    counts.add_row("all", *(str(report["grades"][g]) for g in grades), str(report["count"]), style="bold")
    console.print(counts)

    if report["masks"]:
        masks = Table(title="masks per grade: pixel %, connected components per image")
        masks.add_column("channel")
        for grade in grades:
            masks.add_column(f"grade {grade}", justify="right")
        for channel, per_grade in report["masks"].items():
            cells = []
            for grade in grades:
                stats = per_grade.get(grade)
                cells.append("-" if stats is None else
                             f"{100 * stats['pixel_fraction']:.2f}% {stats['components_per_image']:.1f}")
            masks.add_row(channel, *cells)
        console.print(masks)

    problems = report["problems"]
    if not problems:
        console.print("no problems found")
        return
    table = Table(title=f"{len(problems)} problem(s)")
    table.add_column("kind")
    table.add_column("file", overflow="fold")
    table.add_column("detail", overflow="fold")
    for problem in problems[:max_problems]:
        table.add_row(problem["kind"], problem["file"], problem["detail"])
    console.print(table)
    if len(problems) > max_problems:
        console.print(f"... and {len(problems) - max_problems} more (use --json for all)")
