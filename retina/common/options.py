"""Numbers given on the command line: one rule table, checked for every command before it runs.

typer/click parse ``--lr nan`` and ``--seed -1`` without complaint, and each command used to check (or forget)
its own ranges. Here every integer or float option of every command is looked up by name in :data:`RULES`
(a command may override a name's rule in :data:`COMMAND_RULES`) and refused in one line when it is not finite
or out of range, before the command body runs. ``tests/test_bad_inputs.py`` checks that every numeric option of
the CLI has a rule, so a new option cannot slip through unchecked.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Union, get_args, get_origin

from retina.common.errors import RetinaError

MAX_SEED = 2**32 - 1  # numpy's legacy seeding (and most papers' code) takes 32-bit seeds
MAX_SIDE = 16384  # pixels: four times the largest fundus camera; beyond it memory runs out long before


@dataclass(frozen=True)
class NumberRule:
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # True: the value must be strictly above ``low``
    high_open: bool = False
    meaning: str = ""  # why the range is what it is, for the error line

    def describe(self) -> str:
        low = None if self.low is None else f"{'above' if self.low_open else 'at least'} {_plain(self.low)}"
        high = None if self.high is None else f"{'below' if self.high_open else 'at most'} {_plain(self.high)}"
        return " and ".join(p for p in (low, high) if p) or "finite"

    def accepts(self, value: float) -> bool:
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return not (self.high is not None and (value > self.high or (self.high_open and value == self.high)))


def _plain(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else f"{number:g}"


POSITIVE_COUNT = NumberRule(1)
POSITIVE = NumberRule(0, low_open=True)
NON_NEGATIVE = NumberRule(0)
FRACTION_OPEN = NumberRule(0, 1, low_open=True, high_open=True)
SIDE = NumberRule(1, MAX_SIDE, meaning="pixels")

RULES: dict[str, NumberRule] = {
    "--seed": NumberRule(0, MAX_SEED, meaning="seeds are whole numbers 0 to 2^32-1"),
    "--n": POSITIVE_COUNT,
    "--batch": POSITIVE_COUNT,
    "--batch-size": POSITIVE_COUNT,
    "--res": SIDE,
    "--size": SIDE,
    "--width": POSITIVE_COUNT,
    "--channel-max": POSITIVE_COUNT,
    "--latent": POSITIVE_COUNT,
    "--cut": POSITIVE_COUNT,
    "--steps": POSITIVE_COUNT,
    "--g-steps": POSITIVE_COUNT,
    "--grader-steps": NON_NEGATIVE,
    "--grader-patience": POSITIVE_COUNT,
    "--val-images": POSITIVE_COUNT,
    "--epochs": POSITIVE_COUNT,
    "--pretrain-epochs": NON_NEGATIVE,
    "--finetune-epochs": POSITIVE_COUNT,
    "--limit": NumberRule(1, meaning="the number of images to import"),
    "--max-images": POSITIVE_COUNT,
    "--pairs": POSITIVE_COUNT,
    "--per-grade": POSITIVE_COUNT,
    "--num-workers": NON_NEGATIVE,
    "--every": POSITIVE_COUNT,
    "--kimg": POSITIVE,
    "--snapshot-kimg": POSITIVE,
    "--ada-kimg": POSITIVE,
    "--lr": POSITIVE,
    # r_t estimates E[sign(D(real))], which lies in [-1, 1]; -1 or 1 pin p to rise or fall (used in tests).
    "--ada-target": NumberRule(-1, 1, meaning="ADA targets E[sign(D(real))], which lies in [-1, 1]"),
    "--fraction": FRACTION_OPEN,
    "--label-smoothing": NumberRule(0, 1, low_open=True, meaning="the discriminator's target for reals"),
    "--alpha": NumberRule(0, 1, meaning="overlay opacity"),
    "--truncation": NumberRule(0, 1, meaning="1 = no truncation, 0 = the grade's mean layout"),
    "--blur-sigma": NON_NEGATIVE,
    "--r1-gamma": NON_NEGATIVE,
    "--d-width": POSITIVE_COUNT,
    "--channel-base": POSITIVE_COUNT,
    "--z-dim": POSITIVE_COUNT,
    "--w-dim": POSITIVE_COUNT,
    "--mapping-layers": POSITIVE_COUNT,
    "--style-mixing": NumberRule(0, 1, meaning="a probability"),
    "--pl-weight": NON_NEGATIVE,
    "--l1-weight": NON_NEGATIVE,
    "--port": NumberRule(1, 65535, meaning="a TCP port"),
    "--dataset-id": NumberRule(1, 999, meaning="nnU-Net numbers data sets 1-999"),
}

# (command path without the program name, option) -> the rule where a name means something else there.
COMMAND_RULES: dict[tuple[str, str], NumberRule] = {
    ("data split", "--every"): NumberRule(0, meaning="0 = a seeded draw instead"),
}


def rule_for(command: str, option: str) -> NumberRule | None:
    return COMMAND_RULES.get((command, option), RULES.get(option))


def check_number(option: str, value: float | int, rule: NumberRule | None) -> float | int:
    """Refuse a non-finite or out-of-range number given for ``option``, in one line that says the range."""
    if isinstance(value, float) and not math.isfinite(value):
        raise RetinaError(f"{option} {value}: not a finite number; give a plain number "
                          f"({rule.describe() if rule else 'finite'})")
    if rule is not None and not rule.accepts(value):
        why = f" ({rule.meaning})" if rule.meaning else ""
        raise RetinaError(f"{option} {value}: must be {rule.describe()}{why}")
    return value


def _number_type(annotation: Any) -> type | None:
    if annotation in (int, float):
        return annotation
    if get_origin(annotation) is Union or type(annotation).__name__ == "UnionType":
        kinds = [a for a in get_args(annotation) if a is not type(None)]
        return kinds[0] if len(kinds) == 1 and kinds[0] in (int, float) else None
    return None


def numeric_options(command: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """``(command path, parameter)`` for every int/float option of a click command tree."""
    for name, sub in getattr(command, "commands", {}).items():
        yield from numeric_options(sub, f"{path} {name}".strip())
    for param in command.params:
        descriptor = getattr(param, "type_descriptor", None)
        if descriptor is not None and _number_type(descriptor.annotation) is not None and param.opts:
            yield path, param


def install_number_checks(command: Any) -> Any:
    """Wrap the callback of every numeric option in ``command``'s tree with :func:`check_number`."""
    for path, param in numeric_options(command):
        option = max(param.opts, key=len)
        rule = rule_for(path, option)
        param.callback = _checked(param.callback, option, rule)
    return command


def _checked(previous: Callable | None, option: str, rule: NumberRule | None) -> Callable:
    def callback(ctx: Any, param: Any, value: Any) -> Any:
        if value is not None and not isinstance(value, bool):
            check_number(option, value, rule)
        return previous(ctx, param, value) if previous is not None else value

    return callback
