"""What every benchmark shares: which real images are its test set, refusing leaky synthetic sets, external test
sets, and repeated seeds.

* **Test images** are the real set's ``split=test`` rows; bench models train on its ``split=train`` rows only
  (val rows are not used). A set without test rows gets a seeded 20 % hold-out of its training rows, said in one
  line (Son et al. hold out 20 %).
* **Leaks**: a synthetic set whose generators were trained on any test image (internal or external, matched by
  content hash: :func:`retina.common.fingerprint.find_leaks`), or that contains one, is refused unless
  ``--allow-leak``; then every output says LEAKY.
* **External test** (``--test DIR``): another canonical set scored on the same channels; its ``split=test`` rows
  when it has them, else all its rows.
* **Seeds** (``--seeds 0,1,2``): each model is retrained per seed (weights, data order, synthetic subset); the
  test split stays the one drawn with the first seed. Results are mean ± sample sd over seeds, and a gain is the
  mean ± sd of the per-seed paired differences.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from retina.common.canonical import CanonicalDataset
from retina.common.errors import RetinaError
from retina.common.fingerprint import find_leaks
from retina.common.progress import summary
from retina.common.split import TEST, TRAIN, VAL

TEST_FRACTION = 0.2  # Son et al. Sec. 3: "a random sample of 20% of the total data was held out"
LEAKY = "LEAKY"


def split_real(index: CanonicalDataset, seed: int, test_fraction: float = TEST_FRACTION,
               log: bool = True) -> dict[str, Any]:
    """Train/test names of the real set: split=train / split=test rows, else a seeded hold-out of the train rows."""
    train = [s.name for s in index.subset(TRAIN)]
    test = [s.name for s in index.subset(TEST)]
    if test:
        how = "the data set's split=test rows"
        summary(f"bench: testing on the {len(test)} split=test rows of {index.root}, training on its {len(train)} "
                f"split=train rows ({len(index.subset(VAL))} val rows unused)", log)
    else:
        names = sorted(train)
        order = np.random.default_rng(seed).permutation(len(names))
        count = max(1, int(round(test_fraction * len(names))))
        test = sorted(names[i] for i in order[:count])
        train = sorted(names[i] for i in order[count:])
        how = f"random {test_fraction:.0%} hold-out of the split=train rows (seed {seed}): no split=test rows"
        summary(f"bench: {index.root} has no split=test rows; testing on a seeded {test_fraction:.0%} hold-out "
                f"(seed {seed}) of its training rows (make a split with `retina data split --fractions`)", log)
    if not train:
        raise RetinaError(f"{index.root}: no real training rows (split=train) left after holding out the test set")
    return {"method": how, "train": train, "test": test, "val_rows_unused": len(index.subset(VAL))}


def external_test(path: Path, log: bool = True) -> tuple[CanonicalDataset, list[str], str]:
    """``--test DIR``: its split=test rows, else all its rows (said in one line)."""
    index = CanonicalDataset(path)
    test = index.subset(TEST)
    names, how = ([s.name for s in test], "its split=test rows") if test else (
        index.names, "all its rows (it has no split=test rows)")
    summary(f"bench: external test set {path}: {len(names)} images, {how}", log)
    return index, names, how


def check_leaks(synthetic: Path | None, tests: Sequence[tuple[CanonicalDataset, Sequence[str]]],
                allow_leak: bool) -> dict[str, Any]:
    """Refuse (one line naming the images) a synthetic set that saw a test image, unless ``allow_leak``."""
    if synthetic is None:
        return {"leaky": False, "overlaps": [], "unverifiable": [], "checked": "no synthetic set"}
    overlaps, unverifiable = find_leaks(CanonicalDataset(synthetic), tests)
    if not overlaps and not unverifiable:
        return {"leaky": False, "overlaps": [], "unverifiable": [], "checked": "by content hash"}
    if overlaps:
        shown = ", ".join(overlaps[:4]) + (f", and {len(overlaps) - 4} more" if len(overlaps) > 4 else "")
        total = sum(len(names) for _, names in tests)
        message = f"{synthetic}: saw {len(overlaps)} of the {total} test images, matched by content: {shown}"
    else:
        message = f"{synthetic}: cannot be checked for leaks: {'; '.join(unverifiable)}"
    if not allow_leak:
        raise RetinaError(f"{message}; train the generators on split=train rows only (`retina data split`) or pass "
                          "--allow-leak (every output is then marked leaky)")
    summary(f"{LEAKY} (--allow-leak): {message}")
    return {"leaky": True, "overlaps": overlaps, "unverifiable": unverifiable, "checked": "by content hash"}


def leak_banner(leak: dict[str, Any]) -> str:
    """The line every output of a leaky run starts with ('' when clean)."""
    if not leak.get("leaky"):
        return ""
    what = (f"{len(leak['overlaps'])} test image(s) seen by the synthetic set's generators" if leak["overlaps"]
            else "generators without a training-set fingerprint")
    return f"{LEAKY} (--allow-leak): {what}; these scores overstate what synthetic data is worth\n\n"


def parse_seeds(spec: str | None, default: int) -> list[int]:
    if spec is None or not spec.strip():
        return [default]
    try:
        seeds = [int(part) for part in spec.split(",") if part.strip()]
    except ValueError:
        seeds = []
    if not seeds or len(set(seeds)) != len(seeds):
        raise RetinaError(f"--seeds '{spec}': give distinct integers like 0,1,2")
    return seeds


def mean_sd(values: Sequence[float | None]) -> tuple[float, float]:
    """Mean and sample standard deviation (nan for one value)."""
    array = np.asarray([np.nan if v is None else v for v in values], dtype=float)
    return float(array.mean()), float(array.std(ddof=1)) if len(array) > 1 else math.nan


def aggregate(runs: Sequence[Any]) -> tuple[Any, Any]:
    """Mean and sd over runs of every number in equally shaped nested dicts (other values: the first run's)."""
    first = runs[0]
    if isinstance(first, dict):
        pairs = {k: aggregate([r[k] for r in runs]) for k in first}
        return {k: v[0] for k, v in pairs.items()}, {k: v[1] for k, v in pairs.items()}
    if first is None or (isinstance(first, (int, float)) and not isinstance(first, bool)):
        return mean_sd(runs)
    return first, None


def paired_gain(runs_with: Sequence[dict], runs_without: Sequence[dict], value: Callable[[dict], float]
                ) -> dict[str, float]:
    """Mean ± sd over seeds of value(with) - value(without), the runs paired by seed."""
    mean, sd = mean_sd([value(a) - value(b) for a, b in zip(runs_with, runs_without, strict=True)])
    return {"mean": mean, "sd": sd}


def pm(mean: float | None, sd: float | None = None, signed: bool = False) -> str:
    """``0.4694`` or ``0.4694 ± 0.0123`` (``+0.0123`` when ``signed``); nan as 'nan'."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "nan"
    text = f"{mean:+.4f}" if signed else f"{mean:.4f}"
    if sd is not None and not math.isnan(sd):
        text += f" ± {sd:.4f}"
    return text
