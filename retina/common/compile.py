"""``--compile``: torch.compile for inference, off by default.

Measured on the 2-core CPU of benchmarks/README.md, compiling cost 40-60 s of start-up and gave no gain for
layout sampling (its per-sample noise generators break the graph) and a small one for rendering; on a GPU it can
pay for itself over a large generation. So it is a flag, never a default.
"""

from __future__ import annotations

from torch import nn

from retina.common.errors import RetinaError


def compile_module(module: nn.Module, enabled: bool) -> nn.Module:
    """``module`` itself, or its ``torch.compile`` wrapper (same call signature, same state) when ``enabled``."""
    if not enabled:
        return module
    import torch

    try:
        return torch.compile(module)
    except RuntimeError as error:  # e.g. a platform without a supported compiler back-end
        raise RetinaError(f"--compile: torch.compile is not available here ({error}); run without --compile") from None
