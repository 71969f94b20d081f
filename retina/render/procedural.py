"""The procedural renderer: the phantom's image half exposed as render model ``procedural``.

It needs no checkpoint, so ``retina render`` and ``retina generate`` produce a result on a fresh machine.
Its pictures come from hand-written drawing rules, not from a model fitted to photographs: every output
that uses it is labelled a *procedural preview* (``PREVIEW_NOTE``) in its summary line and retina.json.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from retina.common.grade_rule import grade_from_stack
from retina.common.schema import CHANNEL_NAMES, LESION_CHANNELS

PREVIEW_NOTE = "procedural preview (phantom drawing rules, not a learned renderer)"


class ProceduralRenderer:
    """Implements the render-model protocol of :mod:`retina.render.model` with the phantom's drawing rules.

    ``res=None`` renders at whatever size the masks have (the drawing rules work at any size).
    """

    name = "procedural"
    checkpoint_hash: str | None = None
    preview = True
    note = PREVIEW_NOTE
    channels: tuple[str, ...] = CHANNEL_NAMES
    # An absent lesion folder means "no lesion of that kind": fine for drawing rules (not for a learned model).
    optional_channels: tuple[str, ...] = LESION_CHANNELS

    def __init__(self, res: int | None = None):
        self.res = res

    def predict_grades(self, masks: torch.Tensor) -> torch.Tensor:
        """Grades for masks given without one (:mod:`retina.common.grade_rule`)."""
        stack = (masks > 0.5).cpu().numpy()
        return torch.tensor([grade_from_stack(m) for m in stack], dtype=torch.long)

    @torch.inference_mode()
    def render(self, masks: torch.Tensor, grades: torch.Tensor | None, seeds: Sequence[int]) -> torch.Tensor:
        """``masks`` float (B, len(channels), H, W) -> images float (B, 3, H, W) in [-1, 1]."""
        from retina.phantom.render import render_fundus

        if masks.ndim != 4 or masks.shape[1] != len(self.channels):
            raise ValueError(f"masks must be (B, {len(self.channels)}, H, W), got {tuple(masks.shape)}")
        if len(seeds) != masks.shape[0]:
            raise ValueError(f"{len(seeds)} seeds for a batch of {masks.shape[0]}")
        if grades is None:
            grades = self.predict_grades(masks)
        stack = (masks > 0.5).cpu().numpy()
        images = [
            render_fundus(stack[i], int(grades[i]), int(seeds[i])) for i in range(stack.shape[0])
        ]
        batch = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float()
        return (batch / 127.5 - 1.0).to(masks.device)
