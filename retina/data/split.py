"""Splitting a canonical data set: one set with a train/val/test column, or a training and a held-out folder.

A held-out set that the generators never see is what every fair evaluation here needs (Son et al. hold out
20 % of the real images). Trainers read only the split=train rows and select on split=val (retina.common.split),
benches test on split=test. A split depends only on the names, grades and the seed, so it can be recorded and
redone. Files are copied byte for byte.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from retina.common.canonical import INFO_FILE, LABEL_COLUMNS, SPLITS, CanonicalDataset, CanonicalWriter, Sample
from retina.common.errors import RetinaError
from retina.common.imageio import write_text_atomic
from retina.common.output import check_output


def copy_sample(writer: CanonicalWriter, data: CanonicalDataset, sample: Sample, split: str | None = None) -> None:
    """Copy one sample's canonical PNGs and its label row into ``writer`` (no re-encoding)."""
    image = data.image_path(sample.name) if data.has_images else None
    masks = {c: data.mask_path(c, sample.name) for c in data.channels}
    writer.add_files(sample.name, image=image, masks=masks, grade=sample.grade,
                     split=sample.split if split is None else split, source=sample.source, **sample.extra)


def heldout_random(names: Iterable[str], fraction: float, seed: int) -> set[str]:
    """``round(fraction * n)`` names drawn with a seeded permutation of the sorted names."""
    ordered = sorted(names)
    if not 0 < fraction < 1:
        raise RetinaError(f"--fraction {fraction}: the held-out share must lie strictly between 0 and 1")
    count = max(1, round(fraction * len(ordered)))
    order = np.random.default_rng(seed).permutation(len(ordered))
    return {ordered[i] for i in order[:count]}


def heldout_every(names: Iterable[str], every: int) -> set[str]:
    """Every ``every``-th name in sorted order (positions 0, k, 2k, ...): no randomness at all."""
    return set(sorted(names)[::every])


def write_split(data: CanonicalDataset, heldout: set[str], train_out: str | Path, heldout_out: str | Path,
                rule: str) -> tuple[int, int]:
    """Write ``train_out`` (split=train) and ``heldout_out`` (split=test); returns their sizes."""
    if not heldout or len(heldout) >= len(data):
        raise RetinaError(f"{data.root}: a split needs samples on both sides ({len(data)} samples)")
    # Every check before the first file is written: a refusal must not leave the train half behind.
    train_out, heldout_out = check_output(train_out, "--train"), check_output(heldout_out, "--heldout")
    if train_out.absolute() == heldout_out.absolute():
        raise RetinaError(f"--train and --heldout are both {train_out}; give two different folders")
    source = Path(data.root).resolve()
    for option, out in (("--train", train_out), ("--heldout", heldout_out)):
        if out.exists():
            raise RetinaError(f"{option} {out}: already exists; choose another folder")
        if out.resolve() == source or source in out.resolve().parents:
            raise RetinaError(f"{option} {out}: lies inside the set being split ({source}); write it elsewhere")
    sides = (("train", train_out, [s for s in data.samples if s.name not in heldout]),
             ("test", heldout_out, [s for s in data.samples if s.name in heldout]))
    extra_columns = sorted({key for sample in data.samples for key in sample.extra})
    with ExitStack() as stack:  # both halves open together: an error or a signal removes both partial folders
        for split, out, samples in sides:
            provenance = {"split_of": str(source), "split": split, "rule": rule,
                          "heldout_names": sorted(heldout), "source_provenance": data.info.get("provenance", {})}
            writer = stack.enter_context(CanonicalWriter(out, resolution=data.resolution, provenance=provenance,
                                                         extra_columns=extra_columns))
            for sample in samples:
                copy_sample(writer, data, sample, split)
    return len(data) - len(heldout), len(heldout)


def parse_fractions(spec: str) -> tuple[float, float, float]:
    """``"0.7,0.1,0.2"`` -> (train, val, test) shares; they are normalised to sum to 1."""
    try:
        fractions = tuple(float(part) for part in spec.split(","))
    except ValueError:
        fractions = ()
    if len(fractions) != 3 or any(not f >= 0 for f in fractions) or fractions[0] <= 0 or sum(fractions[1:]) <= 0:
        raise RetinaError(f"--fractions '{spec}': give three shares train,val,test like 0.7,0.1,0.2 (train > 0, and "
                          "val or test > 0)")
    total = sum(fractions)
    return fractions[0] / total, fractions[1] / total, fractions[2] / total


def assign_splits(grades: Sequence[int | None], fractions: Sequence[float], seed: int) -> list[str]:
    """Split stratified by grade (unknown grades are one stratum): within each grade a seeded shuffle, then
    train/val/test by ``fractions`` at the quantiles (position + 0.5) / n."""
    if len(fractions) != 3 or any(f < 0 for f in fractions) or sum(fractions) <= 0:
        raise RetinaError(f"split fractions {tuple(fractions)} must be three non-negative numbers (train, val, test)")
    total = float(sum(fractions))
    bounds = np.cumsum(fractions) / total
    keys = [-1 if g is None else int(g) for g in grades]
    splits = [""] * len(keys)
    rng = np.random.default_rng([seed, 7])
    for grade in sorted(set(keys)):
        members = [i for i, g in enumerate(keys) if g == grade]
        order = rng.permutation(len(members))
        for position, member in enumerate(order):
            quantile = (position + 0.5) / len(members)
            splits[members[member]] = SPLITS[min(int(np.searchsorted(bounds, quantile, side="right")), 2)]
    return splits


def _labels_text(samples: Sequence[Sample], splits: Sequence[str]) -> str:
    extra_columns = sorted({key for sample in samples for key in sample.extra})
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*LABEL_COLUMNS, *extra_columns])
    for sample, split in zip(samples, splits, strict=True):
        writer.writerow([sample.name, "" if sample.grade is None else sample.grade, split, sample.source,
                         *[sample.extra.get(c, "") for c in extra_columns]])
    return buffer.getvalue()


def write_split_column(data: CanonicalDataset, fractions: Sequence[float], seed: int, out: str | Path | None
                       ) -> dict[str, int]:
    """Give every row of ``data`` a train/val/test split (stratified by grade, seeded) in ONE set: a copy at
    ``out``, or ``data`` itself (``out=None``: only labels.csv and retina.json are rewritten). Returns the counts."""
    splits = assign_splits([s.grade for s in data.samples], fractions, seed)
    counts = {name: splits.count(name) for name in SPLITS}
    if counts["train"] == 0 or counts["train"] == len(splits):
        raise RetinaError(f"{data.root}: --fractions {','.join(f'{f:g}' for f in fractions)} leaves "
                          f"{counts['train']} of {len(splits)} rows for training; a split needs rows on both sides")
    rule = {"fractions": [round(f, 6) for f in fractions], "seed": seed, "stratified_by": "grade",
            "counts": counts, "replaced": sorted({s.split for s in data.samples})}
    if out is None:
        info = dict(data.info)
        info["provenance"] = {**info.get("provenance", {}), "split": rule}
        write_text_atomic(data.root / "labels.csv", _labels_text(data.samples, splits))
        write_text_atomic(data.root / INFO_FILE, json.dumps(info, indent=2) + "\n")
        if data.info_path.name != INFO_FILE:  # a set from before the rename: its metadata moves to the new name
            data.info_path.unlink(missing_ok=True)
        return counts
    provenance = {"split_of": str(Path(data.root).resolve()), "split": rule,
                  "source_provenance": data.info.get("provenance", {})}
    extra_columns = sorted({key for sample in data.samples for key in sample.extra})
    with CanonicalWriter(out, resolution=data.resolution, provenance=provenance,
                         extra_columns=extra_columns) as writer:
        for sample, split in zip(data.samples, splits, strict=True):
            copy_sample(writer, data, sample, split)
    return counts
