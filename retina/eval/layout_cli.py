"""``retina eval layout --real DIR --fake DIR``: how close generated layouts are to real ones (table and JSON)."""

from __future__ import annotations

import math
from pathlib import Path

import typer


def _load(root: Path, channels: tuple[str, ...], res: int, split: str | None = None):
    import numpy as np
    import torch

    from retina.common.canonical import CanonicalDataset
    from retina.common.dataset import resize_masks
    from retina.common.errors import RetinaError

    dataset = CanonicalDataset(root)
    samples = dataset.samples if split is None else dataset.subset(split)
    if not samples:
        raise RetinaError(f"{root}: no split={split} rows to compare against; drop --split or split the set with "
                          "`retina data split --fractions`")
    stacks = [resize_masks(torch.from_numpy(dataset.load_masks(s.name, channels)), res).numpy() > 0.5
              for s in samples]
    grades = [-1 if s.grade is None else s.grade for s in samples]
    return np.stack(stacks), grades


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _print_tables(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title="lesion instances and areas, fake vs real (distance: W1 / (mean of means + floor))")
    for column in ("grade", "channel", "count real", "count fake", "count dist", "area real", "area fake",
                   "area dist"):
        table.add_column(column, justify="right")
    for grade, group in report["grades"].items():
        for channel, stats in group["channels"].items():
            count, area = stats["count"], stats["area"]
            table.add_row(grade, channel, f"{count['real_mean']:.2f}", f"{count['fake_mean']:.2f}",
                          f"{count['distance']:.3f}", f"{area['real_mean']:.4f}", f"{area['fake_mean']:.4f}",
                          f"{area['distance']:.3f}")
    console.print(table)
    summary_table = Table(title="layout summary")
    summary_table.add_column("measure")
    summary_table.add_column("real", justify="right")
    summary_table.add_column("fake", justify="right")
    if "optic_disc" in report:
        for key in ("count_rate", "place_rate", "unrooted_rate", "any_rate"):
            summary_table.add_row(f"optic disc {key.replace('_', ' ')}", f"{report['optic_disc']['real'][key]:.3f}",
                                  f"{report['optic_disc']['fake'][key]:.3f}")
    if "vessel_connectivity" in report:
        summary_table.add_row("vessel skeleton in largest component", f"{report['vessel_connectivity']['real']:.3f}",
                              f"{report['vessel_connectivity']['fake']:.3f}")
    control = report.get("grade_control", {})
    if "grade_agreement_fake" in control:
        reference = control.get("grade_accuracy_real_heldout", control["grade_accuracy_real_train"])
        summary_table.add_row("grade classifier: real held-out accuracy / fake agreement", f"{reference:.3f}",
                              f"{control['grade_agreement_fake']:.3f}")
    elif "skipped" in control:
        summary_table.add_row("grade classifier", "skipped", control["skipped"])
    summary_table.add_row("layout score (lower is better)", "", f"{report['score']:.4f}")
    console.print(summary_table)


def layout(
    real: Path = typer.Option(..., help="Canonical data set of real layouts (masks and grades)."),
    fake: Path = typer.Option(..., help="Canonical data set of generated layouts (e.g. from `retina layout sample`)."),
    out: Path | None = typer.Option(None, help="Write the full report as JSON here."),
    res: int | None = typer.Option(None, help="Compare at this resolution (default: the smaller of the two sets)."),
    classifier: bool = typer.Option(True, "--classifier/--no-classifier", help="Train the grade classifier."),
    split: str | None = typer.Option(None, "--split", help="Compare against only these rows of --real (train, val "
                                     "or test), e.g. test: the rows no trainer read."),
) -> None:
    """Lesion counts/areas per grade and channel, optic-disc violations, vessel connectivity, grade control."""
    import json

    from retina.common.canonical import CanonicalDataset
    from retina.common.errors import RetinaError
    from retina.common.imageio import write_text_atomic
    from retina.common.progress import summary
    from retina.common.schema import CHANNEL_NAMES
    from retina.layout.metrics import layout_report

    real_set, fake_set = CanonicalDataset(real), CanonicalDataset(fake)
    channels = tuple(c for c in CHANNEL_NAMES if c in real_set.channels and c in fake_set.channels)
    if not channels:
        raise RetinaError(f"{real} and {fake} share no mask channels (masks/<channel>/ folders); nothing to compare")
    if res is None:
        sizes = []
        for dataset in (real_set, fake_set):
            first = dataset.names[0]
            sizes.append(dataset.load_masks(first, channels[:1]).shape[-1])
        res = min(sizes)
    if res < 8:
        raise RetinaError(f"--res {res}: too small to compare layouts; use 32 or more")
    if split is not None and split not in ("train", "val", "test"):
        raise RetinaError(f"--split {split}: use train, val or test")
    real_masks, real_grades = _load(real, channels, res, split)
    fake_masks, fake_grades = _load(fake, channels, res)
    report = layout_report(real_masks, real_grades, fake_masks, fake_grades, channels, classifier=classifier)
    _print_tables(report)
    if out is not None:
        document = _finite({"real": str(real), "real_split": split or "all rows", "fake": str(fake),
                            "resolution": res, **report})
        write_text_atomic(out, json.dumps(document, indent=2) + "\n")
    summary(f"layout score {report['score']:.4f} (lower is better) for {fake} against {real} at {res} px"
            + (f" -> {out}" if out else ""))
