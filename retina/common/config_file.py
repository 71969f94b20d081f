"""``--config FILE`` for every command: option values from a YAML or JSON file, command-line flags overriding them.

The file holds option names as keys (``batch: 16``, ``snapshot-kimg: 0.5`` or ``snapshot_kimg: 0.5``), flat or
nested: a run's own ``config.json`` (nested dataclasses under ``config``) is accepted back as it is, each leaf
taken by the option of the same name. Values become command-line tokens before the command parses them, so a
config file goes through the same parser, checks and error messages as typed flags. Keys the command has no option
for are listed in one note (a run's config.json holds more than its command's options).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

from retina.common.errors import RetinaError

OPTION = "--config"


def _config_path(argv: list[str]) -> tuple[Path | None, list[str]]:
    """The ``--config`` value and argv without it."""
    rest, path = [], None
    tokens = iter(argv)
    for token in tokens:
        if token == OPTION:
            value = next(tokens, None)
            if value is None or value.startswith("--"):
                raise RetinaError(f"{OPTION} needs a file: {OPTION} run.yaml (or a run's config.json)")
            path = Path(value)
        elif token.startswith(OPTION + "="):
            path = Path(token.split("=", 1)[1])
        else:
            rest.append(token)
    return path, rest


def _load(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise RetinaError(f"{OPTION} {path}: file not found")
    text = path.read_text(encoding="utf-8-sig")
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            document = yaml.safe_load(text)
        else:
            document = json.loads(text)
    except (ValueError, ImportError) as error:  # yaml.YAMLError and JSONDecodeError are ValueErrors
        raise RetinaError(f"{OPTION} {path}: not valid {path.suffix.lstrip('.') or 'JSON'} ({error})") from None
    except Exception as error:  # noqa: BLE001 - PyYAML's own errors
        raise RetinaError(f"{OPTION} {path}: not valid YAML ({str(error).splitlines()[0]})") from None
    if not isinstance(document, dict):
        raise RetinaError(f"{OPTION} {path}: expected a mapping of option names to values, got "
                          f"{type(document).__name__}")
    if "config" in document and isinstance(document["config"], dict) and "retina_version" in document:
        document = document["config"]  # a run folder's config.json
    return document


def _leaves(document: dict[str, Any]) -> dict[str, Any]:
    """Nested mappings flattened to their leaves; a key at a shallower level wins over a deeper one."""
    flat: dict[str, Any] = {}
    nested: list[dict[str, Any]] = []
    for key, value in document.items():
        if isinstance(value, dict):
            nested.append(value)
        else:
            flat[str(key).replace("-", "_")] = value
    for child in nested:
        for key, value in _leaves(child).items():
            flat.setdefault(key, value)
    return flat


def _is_group(command: Any) -> bool:
    return hasattr(command, "commands")  # typer bundles its own click: duck typing, not isinstance


def _command_for(group: Any, argv: list[str]) -> Any:
    command = group
    for token in argv:
        if not _is_group(command):
            break
        if token.startswith("-"):
            return None
        command = command.commands.get(token)
        if command is None:
            return None
    return None if _is_group(command) else command


def _given(option: Any, argv: list[str]) -> bool:
    names = [*option.opts, *option.secondary_opts]
    return any(token in names or any(token.startswith(n + "=") for n in names) for token in argv)


def _tokens(option: Any, value: Any) -> list[str]:
    if value is None:
        return []
    if option.is_flag:
        if not isinstance(value, bool):
            raise RetinaError(f"{OPTION}: '{option.name}' is a switch; give true or false, not {value!r}")
        if option.secondary_opts:
            return [option.opts[0] if value else option.secondary_opts[0]]
        return [option.opts[0]] if value else []
    values = value if isinstance(value, list) and option.multiple else [value]
    tokens: list[str] = []
    for item in values:
        if isinstance(item, (dict, list)):
            raise RetinaError(f"{OPTION}: '{option.name}' takes a single value, not {item!r}")
        if isinstance(item, float) and not math.isfinite(item):
            raise RetinaError(f"{OPTION}: '{option.name}' = {item}; give a finite number")
        tokens += [option.opts[0], str(item).lower() if isinstance(item, bool) else str(item)]
    return tokens


def expand_config(argv: list[str], group: Any) -> list[str]:
    """``argv`` with ``--config FILE`` replaced by the file's values for the options not typed."""
    path, rest = _config_path(argv)
    if path is None:
        return argv
    command = _command_for(group, rest)
    if command is None:
        raise RetinaError(f"{OPTION} goes with a command, e.g. retina layout train {OPTION} run.yaml")
    values = _leaves(_load(path))
    options = {p.name: p for p in command.params if getattr(p, "param_type_name", "") == "option"}
    extra: list[str] = []
    for name, value in values.items():
        option = options.get(name)
        if option is not None and not _given(option, rest):
            extra += _tokens(option, value)
    ignored = sorted(set(values) - set(options))
    if ignored:
        print(f"note: {OPTION} {path}: no option for {', '.join(ignored)} (ignored)", file=sys.stderr)
    return [*rest, *extra]
