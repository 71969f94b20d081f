"""``retina runs plot RUN``: a run's logged curves (losses, ADA p, metrics) as one PNG, from its log.jsonl."""

from __future__ import annotations

import json
import math
from pathlib import Path

from retina.common.errors import RetinaError
from retina.common.imageio import atomic_path
from retina.common.run import STEP_KEYS, is_number, step_of


def read_log(run: str | Path) -> list[dict]:
    path = Path(run) / "log.jsonl"
    if not path.is_file():
        raise RetinaError(f"{path}: not found; RUN must be a training run folder (it has log.jsonl)")
    records = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines):
                continue  # a run killed mid-write leaves a torn last line: skip it
            raise RetinaError(f"{path}:{number}: not JSON; the log is damaged") from None
    return records


def curves(records: list[dict]) -> dict[str, tuple[list[int], list[float]]]:
    """Every numeric key's (steps, values), in log order."""
    series: dict[str, tuple[list[int], list[float]]] = {}
    for record in records:
        step = step_of(record)
        if step is None:
            continue
        for key, value in record.items():
            if key not in STEP_KEYS and is_number(value):
                steps, values = series.setdefault(key, ([], []))
                steps.append(step)
                values.append(float(value))
    return series


def plot_run(run: str | Path, out: str | Path | None = None) -> Path:
    """Write ``out`` (default ``RUN/curves.png``): one panel per logged number against training progress."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run = Path(run)
    records = read_log(run)
    series = curves(records)
    if not series:
        raise RetinaError(f"{run}/log.jsonl: no numbers logged yet; plot again after the first steps")
    unit = "images shown" if any("nimg" in r for r in records) else "step"
    columns = 3
    rows = math.ceil(len(series) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 2.8 * rows), squeeze=False)
    for axis, (key, (steps, values)) in zip(axes.flat, sorted(series.items()), strict=False):
        axis.plot(steps, values, marker="." if len(steps) < 30 else None, linewidth=1)
        axis.set_title(key, fontsize=10)
        axis.set_xlabel(unit, fontsize=8)
        axis.tick_params(labelsize=7)
    for axis in list(axes.flat)[len(series):]:
        axis.axis("off")
    figure.suptitle(f"{run.name}: {len(records)} log records", fontsize=11)
    figure.tight_layout()
    out = Path(out) if out is not None else run / "curves.png"
    with atomic_path(out) as temporary:
        figure.savefig(temporary, format="png", dpi=90)
    plt.close(figure)
    return out
