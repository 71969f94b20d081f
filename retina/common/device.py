"""Choosing where tensors live: ``--device auto|cpu|cuda|cuda:N``, and nothing else.

``torch.device`` accepts many more names (mps, meta, xla, ...) that the trainers and renderers here were
never written for: they fail later with a RuntimeError deep in a model. Every command resolves its
``--device`` here, so the refusal is one line, up front.
"""

from __future__ import annotations

import re

import torch

from retina.common.errors import RetinaError

_CUDA = re.compile(r"cuda(?::(\d+))?")


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    if isinstance(spec, torch.device):
        spec = str(spec)
    text = (spec or "auto").strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    match = _CUDA.fullmatch(text)
    if match is None:
        raise RetinaError(f"--device {spec}: unknown device; use auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise RetinaError(f"--device {spec}: no CUDA device is available here; use --device cpu or auto")
    if match.group(1) is not None and int(match.group(1)) >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise RetinaError(f"--device {spec}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}")
    return torch.device(text)
