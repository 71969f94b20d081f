"""The split discipline: which rows of a canonical set a trainer, a model selection and an evaluation may read.

* Trainers (``layout train``, ``train-aae``, ``train-sketch``, ``render train`` and its grading network, the
  bench models) read ``split=train`` rows only.
* Model selection (which snapshot becomes ``best``) reads ``split=val`` rows. A set without val rows falls back
  to its training rows, said in one log line: optimistic, but never the test rows.
* ``split=test`` rows are read by evaluations only (``retina bench``, ``retina eval``), never by a trainer.

Every row has a split: an empty cell, or a labels.csv without the column, means ``train``, so a set made without a
split is all training rows; trainers say so in one line, since nothing of such a set is held out. Any other value
than train, val or test is refused when labels.csv is read. ``retina data split`` writes the column.
"""

from __future__ import annotations

from collections import Counter

from retina.common.canonical import SPLITS, CanonicalDataset, Sample
from retina.common.errors import RetinaError
from retina.common.progress import summary

TRAIN, VAL, TEST = SPLITS


def split_counts(data: CanonicalDataset) -> str:
    counts = Counter(s.split for s in data.samples)
    return ", ".join(f"{counts[s]} {s}" for s in SPLITS)


def training_rows(data: CanonicalDataset, purpose: str, log: bool = True) -> list[Sample]:
    """The ``split=train`` rows, for ``purpose`` (e.g. "layout training"); one log line says what is left out."""
    rows = data.subset(TRAIN)
    if not rows:
        raise RetinaError(f"{data.root}/labels.csv: no split=train rows ({split_counts(data)}) for {purpose}; "
                          "give the training set, or mark rows train with `retina data split`")
    if len(rows) == len(data):
        summary(f"{purpose}: all {len(rows)} rows of {data.root} are split=train; nothing is held out of this set "
                "(make val/test rows with `retina data split`)", log)
    else:
        summary(f"{purpose}: {len(rows)} split=train rows of {data.root} ({split_counts(data)}); "
                "val and test rows are not read", log)
    return rows


def selection_rows(data: CanonicalDataset, purpose: str, log: bool = True) -> tuple[list[Sample], str]:
    """The rows a best-checkpoint selection scores on and what they are: ``split=val``, else the training rows."""
    rows = data.subset(VAL)
    if rows:
        return rows, VAL
    summary(f"{purpose}: {data.root} has no split=val rows; selecting on the training rows instead (optimistic; "
            "never on test)", log)
    return training_rows(data, purpose, log=False), "train (no val rows)"


def parse_splits(text: str, option: str) -> tuple[str, ...]:
    """``"test"`` or ``"train,val"`` -> the split names, each checked (one line naming the option otherwise)."""
    names = tuple(dict.fromkeys(part.strip().lower() for part in text.split(",") if part.strip()))
    wrong = [n for n in names if n not in SPLITS]
    if not names or wrong:
        raise RetinaError(f"{option} {text!r}: expected train, val, test or a comma list of them")
    return names
