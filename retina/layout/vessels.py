"""Where a sampled layout's vessel tree comes from: ``--vessels gan|aae|sketch``.

``gan`` keeps the layout model's own vessel channel. ``aae`` and ``sketch`` swap it for a tree decoded from
z ~ N(0, I) by a trained vessel AAE or SkrGAN sketch generator (:mod:`retina.layout.sketch_gan`), clipped to
the field of view, and move the optic disc to the root of the new tree
(:func:`retina.layout.optic_disc.place_optic_disc`) so the tree stays rooted in it. A sketch is a photograph's
structure (vessels, disc rim), drawn into the vessel channel as SkrGAN's Table 2 uses it as the vessel label.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from retina.common.errors import RetinaError
from retina.common.schema import CHANNEL_NAMES
from retina.layout.aae import load_aae
from retina.layout.optic_disc import place_optic_disc

VESSEL_SOURCES = ("gan", "aae", "sketch")
_TRAIN_COMMAND = {"aae": "train-aae", "sketch": "train-sketch"}


class VesselSource:
    """A trained AAE/sketch generator that replaces the vessel channel of layouts."""

    def __init__(self, kind: str, checkpoint: str | Path, device: torch.device | str = "cpu"):
        self.kind = kind
        if kind == "sketch":
            from retina.layout.sketch_gan import load_sketch_generator

            self.model, loaded = load_sketch_generator(checkpoint, device)
        else:
            self.model, loaded = load_aae(checkpoint, kind, device)
        self.checkpoint_hash = loaded.short_hash
        self.checkpoint_path = loaded.path

    def replace(self, masks: np.ndarray, seeds: Sequence[int], channels: Sequence[str] = CHANNEL_NAMES) -> np.ndarray:
        """Layouts bool (B, C, H, W) with the vessel channel redrawn (one tree per seed) and the disc re-rooted."""
        channels = tuple(channels)
        if masks.ndim != 4 or masks.shape[1] != len(channels):
            raise RetinaError(f"expected layouts (B, {len(channels)}, H, W), got {tuple(masks.shape)}")
        if len(seeds) != len(masks):
            raise RetinaError(f"{len(seeds)} seeds for {len(masks)} layouts; give one seed per layout")
        if "vessels" not in channels:
            raise RetinaError("the layouts have no 'vessels' channel to replace")
        height, width = masks.shape[-2:]
        if height != width:
            raise RetinaError(f"layouts are {height}x{width}; vessel trees are drawn on square layouts")
        trees = self.model.sample(seeds, size=height)
        out = masks.astype(bool, copy=True)
        vessel = channels.index("vessels")
        for i in range(len(out)):
            tree = trees[i]
            if "fov" in channels and out[i, channels.index("fov")].any():
                tree = tree & out[i, channels.index("fov")]
            out[i, vessel] = tree
            if "od" in channels:
                out[i] = place_optic_disc(out[i], channels)
        return out


def load_vessel_source(kind: str, checkpoint: str | Path | None, device: torch.device | str = "cpu"
                       ) -> VesselSource | None:
    """``None`` for ``gan`` (keep the layout model's vessels); a :class:`VesselSource` for ``aae``/``sketch``."""
    if kind not in VESSEL_SOURCES:
        raise RetinaError(f"--vessels {kind}: unknown; use one of {', '.join(VESSEL_SOURCES)}")
    if kind == "gan":
        return None
    if checkpoint is None:
        data_hint = "--data DIR" if kind == "aae" else "--data DIR_WITH_IMAGES"
        raise RetinaError(
            f"--vessels {kind} needs a trained {kind} checkpoint; train one with "
            f"`retina layout {_TRAIN_COMMAND[kind]} {data_hint} --res 128 --out RUN` "
            "and pass --vessels-checkpoint RUN"
        )
    return VesselSource(kind, checkpoint, device)
