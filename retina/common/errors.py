"""User-facing errors: one line that names the file and the fix, turned into exit code 2 by the CLI."""

from __future__ import annotations

import math
from pathlib import Path


class RetinaError(Exception):
    """An error caused by the user's input or environment, reported as one line without a traceback."""


def parse_grade(value: object, where: str | Path = "") -> int:
    """Parse a DR grade (0-4) from a CSV cell, CLI option or JSON value."""
    place = f"{where}: " if where else ""
    try:
        number = float(str(value).strip())
    except ValueError:
        raise RetinaError(f"{place}grade '{value}' is not a number; grades are integers 0-4") from None
    if not math.isfinite(number):
        raise RetinaError(f"{place}grade '{value}' is not a finite number; grades are integers 0-4")
    if number != int(number) or not 0 <= int(number) <= 4:
        raise RetinaError(f"{place}grade '{value}' is outside 0-4 (International Clinical DR scale)")
    return int(number)


def parse_grades(spec: str, n: int | None = None, option: str = "--grade") -> list[int]:
    """Parse a grade list: '4', '0,2,4', '0-4' or 'uniform' (all five grades, balanced over n samples)."""
    text = spec.strip().lower()
    if text in ("uniform", "all"):
        grades = [0, 1, 2, 3, 4]
    elif "-" in text and "," not in text and not text.startswith("-"):
        low, high = (parse_grade(part, option) for part in text.split("-", 1))
        if low > high:
            raise RetinaError(f"{option} range '{spec}' is empty; write it low-high, e.g. 0-4")
        grades = list(range(low, high + 1))
    else:
        grades = [parse_grade(part, option) for part in text.split(",") if part.strip()]
    if not grades:
        raise RetinaError(f"{option} is empty; give a grade 0-4, a list like 0,2,4, a range 0-4 or 'uniform'")
    if n is None:
        return grades
    return [grades[i % len(grades)] for i in range(n)]
