"""The one validator for metadata: ``retina.json``, the numeric columns of ``labels.csv`` and checkpoint
configs. Each is checked for what its format promises (an object, with fields of the right type, finite, in
range) and, where it describes files, for agreement with them, so that a hand-edited or foreign file ends in
one line naming the file and the field, not in an ``AttributeError`` or ``KeyError`` deep in a model.

JSON is read strictly: Python's ``json`` accepts ``NaN``, ``Infinity`` and ``1e999`` (= inf), which no other
JSON reader does and no field here can mean.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from retina.common.errors import RetinaError
from retina.common.options import MAX_SIDE
from retina.common.schema import CHANNEL_NAMES


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} overflows to infinity")
    return value


def parse_json(text: str, where: str | Path) -> Any:
    """Strict JSON: NaN/Infinity/overflowing numbers are refused, in one line naming ``where``."""
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except (json.JSONDecodeError, ValueError) as error:
        raise RetinaError(f"{where}: not valid JSON ({error}); restore or delete it") from None


def read_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        text = path.read_text("utf-8")
    except UnicodeDecodeError:
        raise RetinaError(f"{path}: not UTF-8 text; restore or delete it") from None
    return parse_json(text, path)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _field(where: str | Path, key: str, problem: str, fix: str) -> RetinaError:
    return RetinaError(f"{where}: \"{key}\" {problem}; {fix}")


# -- retina.json ------------------------------------------------------------------------------------------
def validate_dataset_info(info: Any, path: str | Path) -> dict[str, Any]:
    """Types and ranges of a canonical set's ``retina.json``; returns it as a dict."""
    fix = "correct it or delete retina.json (it is rewritten by `retina data merge`)"
    if not isinstance(info, dict):
        raise RetinaError(f"{path}: holds a JSON {type(info).__name__}, not an object; {fix}")
    resolution = info.get("resolution")
    if resolution is not None and not (_is_int(resolution) and 1 <= resolution <= MAX_SIDE):
        raise _field(path, "resolution", f"is {resolution!r}, not a whole number of pixels 1-{MAX_SIDE} (or null)",
                     fix)
    count = info.get("count")
    if count is not None and not (_is_int(count) and count >= 0):
        raise _field(path, "count", f"is {count!r}, not a whole number >= 0", fix)
    channels = info.get("channels")
    if channels is not None:
        if not (isinstance(channels, list) and all(isinstance(c, str) for c in channels)):
            raise _field(path, "channels", f"is {channels!r}, not a list of channel names", fix)
        unknown = [c for c in channels if c not in CHANNEL_NAMES]
        if unknown:
            raise _field(path, "channels", f"names unknown channel(s) {', '.join(unknown)} (known: "
                         f"{', '.join(CHANNEL_NAMES)})", fix)
    has_images = info.get("has_images")
    if has_images is not None and not isinstance(has_images, bool):
        raise _field(path, "has_images", f"is {has_images!r}, not true or false", fix)
    grades = info.get("grades")
    if grades is not None and not (isinstance(grades, dict) and all(_is_int(v) and v >= 0 for v in grades.values())):
        raise _field(path, "grades", f"is {grades!r}, not an object of counts", fix)
    for key in ("format", "retina_version", "created"):
        if key in info and not isinstance(info[key], str):
            raise _field(path, key, f"is {info[key]!r}, not text", fix)
    provenance = info.get("provenance")
    if provenance is not None and not isinstance(provenance, (dict, str)):
        raise _field(path, "provenance", f"is {provenance!r}, not an object", fix)
    return info


def dataset_disagreements(info: Mapping[str, Any], rows: int, channels: Iterable[str],
                          has_images: bool) -> list[str]:
    """Where a (valid) ``retina.json`` contradicts the files beside it; empty when it agrees."""
    found: list[str] = []
    count = info.get("count")
    if count is not None and count != rows:
        found.append(f"\"count\" is {count} but labels.csv has {rows} row(s)")
    listed = info.get("channels")
    present = list(channels)
    if listed is not None and sorted(listed) != sorted(present):
        missing = [c for c in listed if c not in present]
        unlisted = [c for c in present if c not in listed]
        parts = ([f"masks/{'|'.join(missing)} missing"] if missing else []) + (
            [f"masks/{'|'.join(unlisted)} not listed"] if unlisted else [])
        found.append(f"\"channels\" disagree with masks/ ({'; '.join(parts)})")
    flag = info.get("has_images")
    if flag is not None and flag != has_images:
        found.append(f"\"has_images\" is {str(flag).lower()} but images/ {'exists' if has_images else 'is absent'}")
    return found


# -- labels.csv ------------------------------------------------------------------------------------------------
# Extra columns the writers fill with whole numbers; a hand-edited "nan" or "-3" there is refused.
COUNT_COLUMNS = ("index", "seed", "post_processed")
COUNT_SUFFIXES = ("_instances",)


def check_count_cells(extra: Mapping[str, str], where: str) -> None:
    for column, cell in extra.items():
        if column is None or not (column in COUNT_COLUMNS or column.endswith(COUNT_SUFFIXES)):
            continue
        text = (cell or "").strip()
        if text and not (text.isdigit() and text.isascii()):
            raise RetinaError(f"{where}: {column} '{cell}' is not a whole number >= 0; correct the cell or empty it")


# -- checkpoint configs ----------------------------------------------------------------------------------------
# Config fields that size a network: a checkpoint claiming width 0 or res -1 would fail deep inside torch.
POSITIVE_KEYS = ("res", "width", "channel_max", "latent", "batch", "steps")
SIZE_KEYS = (*POSITIVE_KEYS, "style_dim", "mapping_layers", "residual_blocks", "grading_dim", "covariance_rank",
             "z_dim", "w_dim")
COUNTER_KEYS = ("step", "cur_nimg", "images_seen")


def validate_checkpoint_document(document: Any, path: str | Path) -> dict[str, Any]:
    """The JSON inside a checkpoint: an object with a ``config`` object whose sizes are positive integers."""
    fix = "the file was not written by retina or was edited; use the checkpoint as retina wrote it"
    if not isinstance(document, dict) or not isinstance(document.get("config"), dict):
        raise RetinaError(f"{path}: the checkpoint's metadata is not an object with a \"config\" object; {fix}")
    config = document["config"]
    for key in ("kind", "arch"):
        if key in config and not isinstance(config[key], str):
            raise _field(path, key, f"is {config[key]!r}, not text", fix)
    _check_sizes(config, path, fix)
    state = document.get("state", {})
    if not isinstance(state, dict):
        raise _field(path, "state", "is not an object", fix)
    for key in COUNTER_KEYS:
        if key in state and not (_is_int(state[key]) and state[key] >= 0):
            raise _field(path, f"state.{key}", f"is {state[key]!r}, not a whole number >= 0", fix)
    return document


def _check_sizes(node: Any, path: str | Path, fix: str, prefix: str = "") -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            name = f"{prefix}{key}"
            low = 1 if key in POSITIVE_KEYS else 0
            if key in SIZE_KEYS and value is not None and not (_is_int(value) and low <= value <= 10**9):
                raise _field(path, name, f"is {value!r}, not a whole number >= {low}", fix)
            if key == "res" and _is_int(value) and not 1 <= value <= MAX_SIDE:
                raise _field(path, name, f"is {value}, not a resolution 1-{MAX_SIDE}", fix)
            _check_sizes(value, path, fix, f"{name}.")
