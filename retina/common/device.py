"""Choosing where tensors live: ``--device auto|cpu|cuda|cuda:N``."""

from __future__ import annotations

import torch

from retina.common.errors import RetinaError


def resolve_device(spec: str = "auto") -> torch.device:
    spec = (spec or "auto").lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise RetinaError(f"--device {spec}: no CUDA device is available here; use --device cpu or auto")
    try:
        return torch.device(spec)
    except RuntimeError:
        raise RetinaError(f"--device {spec}: unknown device; use auto, cpu, cuda or cuda:N") from None
