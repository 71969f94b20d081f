"""``retina layout edit``: apply one plan of lesion edits (:mod:`retina.edit`) to every layout of a canonical set.

The plan runs in a fixed order, whatever the order of the options: remove, scale, move, then add (so that added
lesions are neither removed nor scaled by the same plan). The output is a masks-only canonical set (photographs of
the input no longer match its masks: re-render with ``retina render --masks OUT``) whose labels.csv carries the
stated grade, the grade the lesion rule reads off the edited masks and the rule's verdict.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from retina.common.canonical import CanonicalDataset, CanonicalWriter
from retina.common.errors import RetinaError, parse_grade
from retina.common.progress import progress_bar, summary
from retina.common.schema import CHANNEL_INDEX, CHANNEL_NAMES, LESION_CHANNELS, NUM_CHANNELS
from retina.common.seeding import sample_seed
from retina.edit import Layout, add_lesions, grade_check, move, remove_lesions, scale_lesions

EDIT_COLUMNS = ("grade_rule", "grade_check", "edits", "edit_seed")


@dataclass
class EditPlan:
    remove: list[str] = field(default_factory=list)
    scale: list[tuple[str, float]] = field(default_factory=list)
    shift: list[tuple[str, int, int]] = field(default_factory=list)
    add: list[tuple[str, int]] = field(default_factory=list)
    grade: int | None = None  # the stated grade of every edited layout (None: keep each layout's own)

    def describe(self) -> str:
        parts = [f"remove {c}" for c in self.remove] + [f"scale {c} x{f:g}" for c, f in self.scale]
        parts += [f"move {c} {dx:+d},{dy:+d}" for c, dx, dy in self.shift] + [f"add {n} {c}" for c, n in self.add]
        return "; ".join(parts + ([f"grade {self.grade}"] if self.grade is not None else [])) or "none"

    def apply(self, layout: Layout, seed: int) -> Layout:
        for channel in self.remove:
            layout = remove_lesions(layout, channel)
        for channel, factor in self.scale:
            layout = scale_lesions(layout, channel, factor)
        for channel, dx, dy in self.shift:
            layout = move(layout, channel, dx, dy)
        for k, (channel, n) in enumerate(self.add):
            layout = add_lesions(layout, channel, n, seed=sample_seed(seed, k))
        return Layout(layout.masks, self.grade if self.grade is not None else layout.grade)


def _lesion(name: str, option: str) -> str:
    if name not in LESION_CHANNELS:
        raise RetinaError(f"{option} {name!r}: not a lesion channel; choose from {', '.join(LESION_CHANNELS)}")
    return name


def _spec(text: str, option: str, form: str) -> tuple[str, str]:
    channel, sep, value = text.partition(":")
    if not sep or not value.strip():
        raise RetinaError(f"{option} {text!r}: expected {form}")
    return channel.strip(), value.strip()


def parse_plan(remove: list[str], add: list[str], scale: list[str], shift: list[str], grade: str | None) -> EditPlan:
    """The command-line spellings (``--remove he``, ``--add ma:20``, ``--scale ex:2``, ``--move he:5,-3``)."""
    plan = EditPlan(remove=[_lesion(c.strip(), "--remove") for c in remove])
    for text in add:
        channel, value = _spec(text, "--add", "CHANNEL:N, e.g. ma:20")
        if not value.isdigit():
            raise RetinaError(f"--add {text!r}: N must be a whole number 0 or more, e.g. ma:20")
        plan.add.append((_lesion(channel, "--add"), int(value)))
    for text in scale:
        channel, value = _spec(text, "--scale", "CHANNEL:FACTOR, e.g. ex:2")
        try:
            factor = float(value)
        except ValueError:
            factor = math.nan
        if not math.isfinite(factor) or factor <= 0:
            raise RetinaError(f"--scale {text!r}: FACTOR must be a positive number, e.g. ex:2 or he:0.5")
        plan.scale.append((_lesion(channel, "--scale"), factor))
    for text in shift:
        channel, value = _spec(text, "--move", "CHANNEL:DX,DY in pixels, e.g. he:5,-3")
        parts = value.split(",")
        if len(parts) != 2 or not all(p.strip().lstrip("+-").isdigit() for p in parts):
            raise RetinaError(f"--move {text!r}: expected CHANNEL:DX,DY in whole pixels, e.g. he:5,-3")
        if channel not in CHANNEL_NAMES or channel == "fov":
            raise RetinaError(f"--move {text!r}: choose a channel other than fov from {', '.join(CHANNEL_NAMES)}")
        plan.shift.append((channel, int(parts[0]), int(parts[1])))
    if grade is not None:
        plan.grade = parse_grade(grade, "--grade")
    return plan


def edit_set(source: str | Path, out: str | Path, plan: EditPlan, *, names: list[str] | None = None, seed: int = 0,
             overwrite: bool = False) -> Path:
    """Write ``out``: the layouts of ``source`` (or only ``names``) edited by ``plan``; prints the grade check."""
    data = CanonicalDataset(source)
    if not data.channels:
        raise RetinaError(f"{data.root}: no masks/ channels; `retina layout edit` edits mask sets")
    chosen = data.samples if not names else [data.sample(n) for n in names]
    written = sorted({*data.channels, *(c for c, _ in plan.add)}, key=CHANNEL_INDEX.get)
    provenance = {"edited_from": str(data.root.resolve()), "edits": plan.describe(), "edit_seed": seed,
                  "order": "remove, scale, move, add", "source_provenance": data.info.get("provenance", {}),
                  "note": "masks only: re-render with `retina render --masks`"}
    disagree: list[str] = []
    with CanonicalWriter(out, resolution=data.resolution, provenance=provenance,
                         extra_columns=[*(c for c in data.samples[0].extra if c not in EDIT_COLUMNS), *EDIT_COLUMNS],
                         overwrite=overwrite) as writer, progress_bar(len(chosen), "editing layouts") as bar:
        for index, sample in enumerate(chosen):
            stack = data.load_masks(sample.name)
            full = np.zeros((NUM_CHANNELS, *stack.shape[1:]), bool)  # channels the set lacks: nothing drawn there
            for plane, channel in zip(stack, data.channels, strict=True):
                full[CHANNEL_INDEX[channel]] = plane
            item_seed = sample_seed(seed, index)
            edited = plan.apply(Layout(full, sample.grade), item_seed)
            check = grade_check(edited)
            if not check.consistent:
                disagree.append(f"{sample.name}: {check.summary()}")
            writer.add(sample.name, masks={c: edited.channel(c) for c in written}, grade=edited.grade,
                       split=sample.split, source=f"edit:{sample.source or data.root.name}",
                       **{**sample.extra, "grade_rule": check.estimated,
                          "grade_check": "ok" if check.consistent else "; ".join(check.problems),
                          "edits": plan.describe(), "edit_seed": item_seed})
            bar.advance(1)
    for line in disagree[:5]:
        print(f"grade check: {line}")
    if len(disagree) > 5:
        print(f"grade check: ... and {len(disagree) - 5} more (labels.csv column grade_check)")
    summary(f"edited {len(chosen)} layout(s) ({plan.describe()}) into {out}; grade rule agrees with the stated "
            f"grade for {len(chosen) - len(disagree)}/{len(chosen)}; render with `retina render --masks {out}`")
    return Path(out)
