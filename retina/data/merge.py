"""Join canonical data sets (e.g. the shards of ``retina generate --shard i/n``) into one.

The parts must agree on what a sample is (same mask channels, resolution, images or not), and the union must
not repeat a name or, where the sets record one, a generation seed: a repeated seed means two shards generated
the same sample. Files are copied, not re-encoded; the merged retina.json lists the parts in its provenance.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from retina.common.canonical import CanonicalDataset, CanonicalWriter
from retina.common.errors import RetinaError
from retina.common.imageio import read_mask, verify_image
from retina.common.progress import progress_bar
from retina.data.split import copy_sample

SEED_COLUMN = "seed"


@dataclass
class MergeReport:
    out: Path
    parts: int
    count: int
    grades: Counter

    def summary_line(self) -> str:
        grades = ", ".join(f"grade {g}: {n}" for g, n in sorted(self.grades.items(), key=str))
        return f"merged {self.parts} sets, {self.count} samples ({grades}) into {self.out}"


def _resolution(part: CanonicalDataset) -> int | None:
    """retina.json's resolution, else the width of the first sample's first file."""
    if part.resolution is not None:
        return part.resolution
    first = part.names[0]
    path = part.image_path(first) if part.has_images else part.mask_path(part.channels[0], first)
    return read_mask(path).shape[1] if path.exists() else None


def _check_compatible(parts: list[CanonicalDataset]) -> None:
    reference = parts[0]
    for part in parts[1:]:
        if part.channels != reference.channels:
            raise RetinaError(f"{part.root}: mask channels {', '.join(part.channels) or 'none'} differ from "
                              f"{reference.root}'s {', '.join(reference.channels) or 'none'}; merge like with like")
        if part.has_images != reference.has_images:
            raise RetinaError(f"{part.root}: {'has' if part.has_images else 'lacks'} images/ unlike "
                              f"{reference.root}; merge photograph sets with photograph sets")
        if _resolution(part) != _resolution(reference):
            raise RetinaError(f"{part.root}: resolution {_resolution(part)} differs from {reference.root}'s "
                              f"{_resolution(reference)}; re-import or regenerate at one size")


def _check_unique(parts: list[CanonicalDataset], keep_first: bool) -> dict[Path, set[str]]:
    """Names each later part repeats; with ``keep_first`` they are left out of the merge, otherwise an error."""
    owner: dict[str, Path] = {}
    repeated: dict[Path, set[str]] = {}
    for part in parts:
        for name in part.names:
            if name in owner and keep_first:
                repeated.setdefault(part.root, set()).add(name)
                continue
            if name in owner:
                raise RetinaError(f"{part.root}: sample '{name}' is also in {owner[name]}; names must be unique "
                                  "(were the same shard or seed range generated twice?), or pass --duplicates first "
                                  "to keep the first set's copy")
            owner[name] = part.root
    with_seed = [p for p in parts if any(SEED_COLUMN in s.extra for s in p.samples)]
    if not with_seed:
        return repeated
    if len(with_seed) != len(parts):
        lacking = next(p for p in parts if p not in with_seed)
        raise RetinaError(f"{lacking.root}/labels.csv: no '{SEED_COLUMN}' column while other parts have one; "
                          "merge sets made the same way")
    seen: dict[str, str] = {}
    for part in parts:
        for sample in part.samples:
            seed = sample.extra.get(SEED_COLUMN, "").strip()
            if seed == "":
                continue
            if seed in seen:
                raise RetinaError(f"{part.root}/labels.csv: seed {seed} of '{sample.name}' was already used by "
                                  f"'{seen[seed]}'; the shards overlap (check --shard i/n and --seed)")
            seen[seed] = sample.name
    return repeated


def _check_files(part: CanonicalDataset, name: str, resolution: int | None) -> None:
    """Files are copied without decoding, so check here that each one is there, complete and of the set's size."""
    paths = [part.image_path(name)] if part.has_images else []
    paths += [part.mask_path(c, name) for c in part.channels]
    for path in paths:
        width, height = verify_image(path)
        if resolution is not None and (width, height) != (resolution, resolution):
            raise RetinaError(f"{path}: {width}x{height} pixels in a {resolution}px set; re-import or regenerate "
                              f"it, or run `retina data inspect {part.root}`")


def merge_datasets(
    sources: list[str | Path], out: str | Path, *, overwrite: bool = False, keep_first: bool = False,
    show_progress: bool = True,
) -> MergeReport:
    """Join ``sources`` into ``out``; ``keep_first``: a name that an earlier part already has is left out."""
    if len(sources) < 2:
        raise RetinaError("merge needs at least two data set folders")
    out = Path(out).resolve()
    parts = [CanonicalDataset(source) for source in sources]
    for part in parts:
        if part.root.resolve() == out:
            raise RetinaError(f"{part.root}: --out is one of the inputs; choose a new folder")
    _check_compatible(parts)
    repeated = _check_unique(parts, keep_first)
    extra_columns: list[str] = []
    for part in parts:
        for sample in part.samples:
            extra_columns += [c for c in sample.extra if c not in extra_columns]
    provenance = {
        "merged_from": [
            {"path": str(p.root.resolve()), "count": len(p) - len(repeated.get(p.root, ())),
             "provenance": p.info.get("provenance", {}),
             **({"left_out_as_duplicates": sorted(repeated[p.root])} if p.root in repeated else {})}
            for p in parts
        ],
    }
    total = sum(len(p) - len(repeated.get(p.root, ())) for p in parts)
    grades: Counter = Counter()
    with CanonicalWriter(out, resolution=_resolution(parts[0]), provenance=provenance,
                         extra_columns=extra_columns, overwrite=overwrite) as writer:
        with progress_bar(total, "merge", enabled=show_progress) as bar:
            for part in parts:
                for sample in part.samples:
                    if sample.name in repeated.get(part.root, ()):
                        continue
                    _check_files(part, sample.name, writer.resolution)
                    copy_sample(writer, part, sample)
                    grades["unknown" if sample.grade is None else sample.grade] += 1
                    bar.advance(1)
    return MergeReport(out, len(parts), total, grades)
